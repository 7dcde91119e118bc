//! The file types `quantize` can produce, named as llama-quantize names them.

use std::fmt;
use std::str::FromStr;

use lingqiao_gguf::GgmlType;

/// A target file type: a base tensor type plus, for the K-quant mixes, llama.cpp's rules
/// for which tensors get more bits. Names and ftype numbers are llama.cpp's
/// (`QUANT_OPTIONS` in tools/quantize/quantize.cpp, `enum llama_ftype` in llama.h).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[allow(non_camel_case_types)]
pub enum Target {
    F32,
    F16,
    BF16,
    Q4_0,
    Q4_1,
    Q5_0,
    Q5_1,
    Q8_0,
    Q2_K,
    Q3_K_S,
    Q3_K_M,
    Q3_K_L,
    Q4_K_S,
    Q4_K_M,
    Q5_K_S,
    Q5_K_M,
    Q6_K,
}

impl Target {
    pub const ALL: [Target; 17] = [
        Target::Q8_0,
        Target::Q4_0,
        Target::Q4_1,
        Target::Q5_0,
        Target::Q5_1,
        Target::Q2_K,
        Target::Q3_K_S,
        Target::Q3_K_M,
        Target::Q3_K_L,
        Target::Q4_K_S,
        Target::Q4_K_M,
        Target::Q5_K_S,
        Target::Q5_K_M,
        Target::Q6_K,
        Target::F16,
        Target::BF16,
        Target::F32,
    ];

    /// llama-quantize's aliases: the bare K-quant name means its _M mix.
    const ALIASES: [(&'static str, Target); 3] = [
        ("Q3_K", Target::Q3_K_M),
        ("Q4_K", Target::Q4_K_M),
        ("Q5_K", Target::Q5_K_M),
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Target::F32 => "F32",
            Target::F16 => "F16",
            Target::BF16 => "BF16",
            Target::Q4_0 => "Q4_0",
            Target::Q4_1 => "Q4_1",
            Target::Q5_0 => "Q5_0",
            Target::Q5_1 => "Q5_1",
            Target::Q8_0 => "Q8_0",
            Target::Q2_K => "Q2_K",
            Target::Q3_K_S => "Q3_K_S",
            Target::Q3_K_M => "Q3_K_M",
            Target::Q3_K_L => "Q3_K_L",
            Target::Q4_K_S => "Q4_K_S",
            Target::Q4_K_M => "Q4_K_M",
            Target::Q5_K_S => "Q5_K_S",
            Target::Q5_K_M => "Q5_K_M",
            Target::Q6_K => "Q6_K",
        }
    }

    /// The value of `general.file_type` (`enum llama_ftype`).
    pub const fn ftype(self) -> u32 {
        match self {
            Target::F32 => 0,
            Target::F16 => 1,
            Target::Q4_0 => 2,
            Target::Q4_1 => 3,
            Target::Q8_0 => 7,
            Target::Q5_0 => 8,
            Target::Q5_1 => 9,
            Target::Q2_K => 10,
            Target::Q3_K_S => 11,
            Target::Q3_K_M => 12,
            Target::Q3_K_L => 13,
            Target::Q4_K_S => 14,
            Target::Q4_K_M => 15,
            Target::Q5_K_S => 16,
            Target::Q5_K_M => 17,
            Target::Q6_K => 18,
            Target::BF16 => 32,
        }
    }

    /// The type most tensors get (`llama_ftype_get_default_type`).
    pub const fn base_type(self) -> GgmlType {
        match self {
            Target::F32 => GgmlType::F32,
            Target::F16 => GgmlType::F16,
            Target::BF16 => GgmlType::BF16,
            Target::Q4_0 => GgmlType::Q4_0,
            Target::Q4_1 => GgmlType::Q4_1,
            Target::Q5_0 => GgmlType::Q5_0,
            Target::Q5_1 => GgmlType::Q5_1,
            Target::Q8_0 => GgmlType::Q8_0,
            Target::Q2_K => GgmlType::Q2_K,
            Target::Q3_K_S | Target::Q3_K_M | Target::Q3_K_L => GgmlType::Q3_K,
            Target::Q4_K_S | Target::Q4_K_M => GgmlType::Q4_K,
            Target::Q5_K_S | Target::Q5_K_M => GgmlType::Q5_K,
            Target::Q6_K => GgmlType::Q6_K,
        }
    }

    /// Every accepted spelling, for error messages.
    pub fn valid_names() -> String {
        let mut names: Vec<&str> = Target::ALL.iter().map(|t| t.name()).collect();
        names.extend(Target::ALIASES.iter().map(|(a, _)| *a));
        names.join(", ")
    }
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// An unknown type name; the message lists the valid ones.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown quantization type {name:?}; valid types: {valid}", valid = Target::valid_names())]
pub struct UnknownTarget {
    pub name: String,
}

impl FromStr for Target {
    type Err = UnknownTarget;

    /// Case-insensitive, as llama-quantize.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let found = Target::ALL
            .iter()
            .map(|&t| (t.name(), t))
            .chain(Target::ALIASES)
            .find(|(name, _)| name.eq_ignore_ascii_case(s));
        found.map(|(_, t)| t).ok_or_else(|| UnknownTarget {
            name: s.to_string(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_aliases() {
        for t in Target::ALL {
            assert_eq!(t.name().parse::<Target>(), Ok(t));
            assert_eq!(t.name().to_lowercase().parse::<Target>(), Ok(t));
            assert_eq!(t.to_string(), t.name());
        }
        assert_eq!("q4_k".parse::<Target>(), Ok(Target::Q4_K_M));
        assert_eq!("Q3_K".parse::<Target>(), Ok(Target::Q3_K_M));
        assert_eq!("Q5_K".parse::<Target>(), Ok(Target::Q5_K_M));
        let err = "Q4_X".parse::<Target>().unwrap_err().to_string();
        assert!(err.contains("Q4_X") && err.contains("Q4_K_M") && err.contains("BF16"));
    }
}
