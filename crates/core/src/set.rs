//! A set of learned functions, its artifact file and the difference of two sets.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::files::{read_versioned, write_json_atomic};
use crate::{CoreError, LearnedFunction};

/// Name written in every artifact file.
pub const ARTIFACT_FORMAT: &str = "agentopt-functions";
/// Artifact layout version this build writes and reads.
pub const ARTIFACT_VERSION: u32 = 1;

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

impl Provenance {
    /// The provenance of a set `producer` exports now.
    pub fn exported_now(
        producer: impl Into<String>,
        optimizer_model: impl Into<String>,
        performance: Option<f64>,
        steps: u64,
    ) -> Self {
        Self {
            producer: producer.into(),
            optimizer_model: optimizer_model.into(),
            performance,
            steps,
            exported_at_unix: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_secs()),
        }
    }
}

/// The functions an agent pair holds, in order, each name once; saved and loaded
/// as the portable `functions.json` artifact.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionSet {
    functions: Vec<LearnedFunction>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    provenance: Option<Provenance>,
}

impl FunctionSet {
    /// A set holding `functions` in order; a later function replaces an earlier one
    /// of the same name.
    pub fn new(functions: impl IntoIterator<Item = LearnedFunction>) -> Self {
        let mut set = Self::default();
        for function in functions {
            set.upsert(function);
        }
        set
    }

    /// Sets where the set came from (written to the artifact).
    #[must_use]
    pub fn with_provenance(mut self, provenance: Provenance) -> Self {
        self.provenance = Some(provenance);
        self
    }

    /// Where the set came from, when known.
    pub fn provenance(&self) -> Option<&Provenance> {
        self.provenance.as_ref()
    }

    /// Adds `function`, replacing the one with its name (in place).
    pub fn upsert(&mut self, function: LearnedFunction) {
        match self
            .functions
            .iter_mut()
            .find(|known| known.name == function.name)
        {
            Some(known) => *known = function,
            None => self.functions.push(function),
        }
    }

    /// Removes the function called `name`; returns whether it was there.
    pub fn remove(&mut self, name: &str) -> bool {
        let before = self.functions.len();
        self.functions.retain(|function| function.name != name);
        self.functions.len() != before
    }

    /// The functions, in order.
    pub fn functions(&self) -> &[LearnedFunction] {
        &self.functions
    }

    /// The function called `name`.
    pub fn get(&self, name: &str) -> Option<&LearnedFunction> {
        self.functions.iter().find(|function| function.name == name)
    }

    /// The names, in order.
    pub fn names(&self) -> Vec<&str> {
        self.functions
            .iter()
            .map(|function| function.name.as_str())
            .collect()
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.functions.len()
    }

    /// No functions.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }

    /// What changes from `self` to `newer`: removed names, added and revised
    /// functions (in `newer`'s order). Unchanged functions appear nowhere.
    pub fn diff(&self, newer: &FunctionSet) -> FunctionDiff {
        let removed = self
            .functions
            .iter()
            .filter(|function| newer.get(&function.name).is_none())
            .map(|function| function.name.clone())
            .collect();
        let mut added = Vec::new();
        let mut revised = Vec::new();
        for function in &newer.functions {
            match self.get(&function.name) {
                None => added.push(function.clone()),
                Some(old) if old != function => revised.push(function.clone()),
                Some(_) => {}
            }
        }
        FunctionDiff {
            removed,
            added,
            revised,
        }
    }

    /// Writes the artifact atomically as pretty JSON (OpenAI tool schemas, packages,
    /// code and provenance). A set without provenance is written with an empty one.
    ///
    /// # Errors
    /// [`CoreError::Io`] naming the file.
    pub fn save(&self, path: &Path) -> Result<(), CoreError> {
        write_json_atomic(path, &ArtifactFile::from_set(self))
    }

    /// Reads an artifact and checks each function's name (an identifier, unique)
    /// and argument schema (an object). The Python code itself is checked where it
    /// runs (the optimizer parses it; the sandbox runs it).
    ///
    /// # Errors
    /// [`CoreError::Io`], [`CoreError::Format`], [`CoreError::UnsupportedVersion`],
    /// [`CoreError::InvalidFunction`], each naming the file.
    pub fn load(path: &Path) -> Result<Self, CoreError> {
        let file: ArtifactFile = read_versioned(path, ARTIFACT_FORMAT, ARTIFACT_VERSION)?;
        let mut set = Self {
            functions: Vec::new(),
            provenance: Some(file.provenance),
        };
        for entry in file.functions {
            let function = entry.into_function();
            let invalid = |message| CoreError::InvalidFunction {
                path: path.to_owned(),
                name: function.name.clone(),
                message,
            };
            function.check_shape().map_err(invalid)?;
            if set.get(&function.name).is_some() {
                return Err(invalid("the name appears twice".to_owned()));
            }
            set.functions.push(function);
        }
        Ok(set)
    }
}

impl From<Vec<LearnedFunction>> for FunctionSet {
    fn from(functions: Vec<LearnedFunction>) -> Self {
        Self::new(functions)
    }
}

/// Read access as a slice, in order (`set[0]`, `set.iter()`, `&set` where a
/// `&[LearnedFunction]` is expected).
impl std::ops::Deref for FunctionSet {
    type Target = [LearnedFunction];

    fn deref(&self) -> &[LearnedFunction] {
        &self.functions
    }
}

impl<'a> IntoIterator for &'a FunctionSet {
    type Item = &'a LearnedFunction;
    type IntoIter = std::slice::Iter<'a, LearnedFunction>;

    fn into_iter(self) -> Self::IntoIter {
        self.functions.iter()
    }
}

/// The change from one function set to another.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FunctionDiff {
    /// Names that left.
    pub removed: Vec<String>,
    /// New functions.
    pub added: Vec<LearnedFunction>,
    /// Functions whose description, schema, packages or code changed.
    pub revised: Vec<LearnedFunction>,
}

impl FunctionDiff {
    /// Nothing changed.
    pub fn is_empty(&self) -> bool {
        self.removed.is_empty() && self.added.is_empty() && self.revised.is_empty()
    }
}

/// The artifact as written: `{"format", "version", "functions": [{"tool", "packages",
/// "code"}], "provenance"}`, where `tool` is the OpenAI tool schema any agent
/// framework can offer as it is.
#[derive(Serialize, Deserialize)]
struct ArtifactFile {
    format: String,
    version: u32,
    functions: Vec<ArtifactEntry>,
    provenance: Provenance,
}

#[derive(Serialize, Deserialize)]
struct ArtifactEntry {
    tool: ArtifactTool,
    packages: Vec<String>,
    code: String,
}

#[derive(Serialize, Deserialize)]
struct ArtifactTool {
    #[serde(rename = "type")]
    kind: String,
    function: ArtifactSignature,
}

#[derive(Serialize, Deserialize)]
struct ArtifactSignature {
    name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    description: Option<String>,
    #[serde(default)]
    parameters: Value,
}

impl ArtifactFile {
    fn from_set(set: &FunctionSet) -> Self {
        Self {
            format: ARTIFACT_FORMAT.to_owned(),
            version: ARTIFACT_VERSION,
            functions: set
                .functions
                .iter()
                .map(|function| ArtifactEntry {
                    tool: ArtifactTool {
                        kind: "function".to_owned(),
                        function: ArtifactSignature {
                            name: function.name.clone(),
                            description: Some(function.description.clone()),
                            parameters: function.parameters.clone(),
                        },
                    },
                    packages: function.packages.clone(),
                    code: function.code.clone(),
                })
                .collect(),
            provenance: set.provenance.clone().unwrap_or(Provenance {
                producer: String::new(),
                optimizer_model: String::new(),
                performance: None,
                steps: 0,
                exported_at_unix: 0,
            }),
        }
    }
}

impl ArtifactEntry {
    fn into_function(self) -> LearnedFunction {
        LearnedFunction {
            name: self.tool.function.name,
            description: self.tool.function.description.unwrap_or_default(),
            parameters: self.tool.function.parameters,
            packages: self.packages,
            code: self.code,
        }
    }
}
