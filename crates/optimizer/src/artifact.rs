//! The portable artifact of a trained function set: OpenAI tool schemas, code,
//! packages and provenance, as one JSON file any agent can load.

use std::path::Path;

use agentopt_llm::ToolSchema;
use agentopt_sandbox::LearnedFunction;
use serde::{Deserialize, Serialize};

use crate::LearnedFunctionSpec;
use crate::OptimizerError;
use crate::state::{read_versioned, write_json_atomically};

/// Name written in every artifact file.
pub const ARTIFACT_FORMAT: &str = "agentopt-functions";
/// Artifact layout version this build writes and reads.
pub const ARTIFACT_VERSION: u32 = 1;

/// One function in an artifact.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactFunction {
    /// The OpenAI tool schema the assistant is offered.
    pub tool: ToolSchema,
    /// Allowlisted pip packages the code imports.
    pub packages: Vec<String>,
    /// Python source defining the function.
    pub code: String,
}

/// Where a function set came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Provenance {
    /// The program that wrote the artifact, with its version.
    pub producer: String,
    /// The optimizer model that proposed the functions.
    pub optimizer_model: String,
    /// The training score of the set (mean outcome), if it was scored.
    pub performance: Option<f64>,
    /// Optimizer steps taken.
    pub steps: u64,
    /// Export time, seconds since the Unix epoch.
    pub exported_at_unix: u64,
}

/// A trained function set, ready to save or load.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FunctionArtifact {
    /// Always [`ARTIFACT_FORMAT`].
    pub format: String,
    /// Always [`ARTIFACT_VERSION`] for files this build writes.
    pub version: u32,
    /// The functions.
    pub functions: Vec<ArtifactFunction>,
    /// Where they came from.
    pub provenance: Provenance,
}

impl FunctionArtifact {
    /// An artifact holding `functions`.
    pub fn new(functions: &[LearnedFunctionSpec], provenance: Provenance) -> Self {
        Self {
            format: ARTIFACT_FORMAT.to_owned(),
            version: ARTIFACT_VERSION,
            functions: functions
                .iter()
                .map(|function| ArtifactFunction {
                    tool: function.tool_schema(),
                    packages: function.packages.clone(),
                    code: function.code.clone(),
                })
                .collect(),
            provenance,
        }
    }

    /// Writes the artifact atomically as pretty JSON.
    ///
    /// # Errors
    /// [`OptimizerError::Io`] naming the file.
    pub fn save(&self, path: &Path) -> Result<(), OptimizerError> {
        write_json_atomically(path, self)
    }

    /// Reads an artifact and checks every function (identifier, `def name(...)`,
    /// schema matching the parameters, allowlisted packages).
    ///
    /// # Errors
    /// [`OptimizerError::Io`], [`OptimizerError::Format`],
    /// [`OptimizerError::UnsupportedVersion`] or
    /// [`OptimizerError::InvalidArtifactFunction`], each naming the file.
    pub fn load(path: &Path) -> Result<Self, OptimizerError> {
        let artifact: Self = read_versioned(path, ARTIFACT_FORMAT, ARTIFACT_VERSION)?;
        for function in artifact.specs() {
            function
                .check()
                .map_err(|message| OptimizerError::InvalidArtifactFunction {
                    path: path.to_path_buf(),
                    name: function.name.clone(),
                    message,
                })?;
        }
        Ok(artifact)
    }

    /// The functions as specs (signature, code and packages together).
    pub fn specs(&self) -> Vec<LearnedFunctionSpec> {
        self.functions
            .iter()
            .map(|function| {
                let schema = function.tool.function();
                LearnedFunctionSpec {
                    name: schema.name.clone(),
                    description: schema.description.clone().unwrap_or_default(),
                    arguments: schema.parameters.clone(),
                    packages: function.packages.clone(),
                    code: function.code.clone(),
                }
            })
            .collect()
    }

    /// The tool schemas to offer an assistant.
    pub fn tools(&self) -> Vec<ToolSchema> {
        self.functions
            .iter()
            .map(|function| function.tool.clone())
            .collect()
    }

    /// The functions for a sandbox executor.
    pub fn learned_functions(&self) -> Vec<LearnedFunction> {
        self.specs()
            .iter()
            .map(LearnedFunctionSpec::learned_function)
            .collect()
    }
}
