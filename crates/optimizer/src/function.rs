//! A learned function and the static checks every one must pass: a valid identifier,
//! code that parses and defines `def name(...)`, an argument schema whose property
//! names are exactly the function's parameters, and allowlisted packages.

use std::collections::{BTreeMap, BTreeSet};

use agentopt_core::LearnedFunction;
use agentopt_core::check_identifier;
use agentopt_sandbox::{PACKAGE_ALLOWLIST, allowlisted_package};

use crate::names::check_not_reserved;
use crate::stdlib::STANDARD_LIBRARY;
use rustpython_parser::Parse;
use rustpython_parser::ast::{self, Stmt};
use serde::Serialize;
use serde_json::{Map, Value};

/// JSON-Schema types a learned function's argument may have (AG2 offers string,
/// integer, object, array and boolean; number is accepted too because models write it).
const ARGUMENT_TYPES: &[&str] = &["string", "integer", "number", "object", "array", "boolean"];

/// Runs every static check on a learned function: a name it may take, code that parses
/// and defines `def name(...)` at top level, an argument schema whose properties are
/// exactly the keyword parameters, and allowlisted packages.
///
/// # Errors
/// A message naming the first rule the function breaks.
pub fn check_function(function: &LearnedFunction) -> Result<(), String> {
    check_name(&function.name)?;
    let parameters = defined_parameters(&function.name, &function.code)?;
    check_schema_matches(&function.parameters, &parameters)?;
    check_packages(&function.packages, None)
}

/// A learned function's name: a Python identifier, not a keyword, not a builtin it
/// would shadow in the assistant's session, not a special name.
pub(crate) fn check_name(name: &str) -> Result<(), String> {
    check_identifier(name)?;
    check_not_reserved(name)
}

/// The form shown to the optimizer model in List A / List B: AG2's five elements in
/// AG2's order, with the packages as one string as the tools take them.
pub(crate) fn prompt_form(function: &LearnedFunction) -> PromptFunction<'_> {
    PromptFunction {
        name: &function.name,
        description: &function.description,
        arguments: &function.parameters,
        packages: function.packages.join(" "),
        code: &function.code,
    }
}

/// A function as List A / List B show it.
#[derive(Serialize)]
pub(crate) struct PromptFunction<'a> {
    name: &'a str,
    description: &'a str,
    arguments: &'a Value,
    packages: String,
    code: &'a str,
}

/// The parameters of `def name(...)`, a top-level definition in `code`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Parameters {
    /// Every parameter that can be passed by keyword, with the JSON type its
    /// annotation or default value names (`string` when neither does).
    pub(crate) named: BTreeMap<String, &'static str>,
    /// Those without a default value.
    pub(crate) required: BTreeSet<String>,
    /// The function takes `**kwargs`.
    pub(crate) takes_any_keyword: bool,
}

/// Parses `code` and finds the top-level `def name(...)`.
pub(crate) fn defined_parameters(name: &str, code: &str) -> Result<Parameters, String> {
    let suite = ast::Suite::parse(code, "<learned function>")
        .map_err(|error| format!("the code does not parse as Python: {error}"))?;
    let arguments = top_level_def(&suite, name)?;
    let mut parameters = Parameters {
        named: BTreeMap::new(),
        required: BTreeSet::new(),
        takes_any_keyword: arguments.kwarg.is_some(),
    };
    // Positional-only parameters cannot be passed as `name(**arguments)`.
    if let Some(positional) = arguments.posonlyargs.first() {
        return Err(format!(
            "parameter `{}` is positional-only; the function is called with keyword \
             arguments",
            positional.def.arg.as_str()
        ));
    }
    for parameter in arguments.args.iter().chain(&arguments.kwonlyargs) {
        let parameter_name = parameter.def.arg.as_str().to_owned();
        if parameter.default.is_none() {
            parameters.required.insert(parameter_name.clone());
        }
        parameters
            .named
            .insert(parameter_name, json_type_of(parameter));
    }
    Ok(parameters)
}

/// The arguments of the top-level `def name(...)` in `suite`.
fn top_level_def<'a>(suite: &'a ast::Suite, name: &str) -> Result<&'a ast::Arguments, String> {
    let definition = suite.iter().find_map(|statement| match statement {
        Stmt::FunctionDef(definition) if definition.name.as_str() == name => Some(&definition.args),
        _ => None,
    });
    definition.map(|arguments| &**arguments).ok_or_else(|| {
        let defined: Vec<&str> = suite
            .iter()
            .filter_map(|statement| match statement {
                Stmt::FunctionDef(definition) => Some(definition.name.as_str()),
                _ => None,
            })
            .collect();
        format!(
            "the code must define the function at top level as `def {name}(...)`; it \
             defines {defined:?}"
        )
    })
}

/// The JSON type a parameter's annotation or default value names, else `string`.
fn json_type_of(parameter: &ast::ArgWithDefault) -> &'static str {
    let annotated = parameter
        .def
        .annotation
        .as_deref()
        .and_then(|annotation| match annotation {
            ast::Expr::Name(named) => json_type_of_name(named.id.as_str()),
            _ => None,
        });
    let defaulted = parameter
        .default
        .as_deref()
        .and_then(|default| match default {
            ast::Expr::Constant(constant) => json_type_of_constant(&constant.value),
            _ => None,
        });
    annotated.or(defaulted).unwrap_or("string")
}

fn json_type_of_name(python_type: &str) -> Option<&'static str> {
    Some(match python_type {
        "int" => "integer",
        "float" => "number",
        "str" => "string",
        "bool" => "boolean",
        "list" | "tuple" => "array",
        _ => return None,
    })
}

fn json_type_of_constant(value: &ast::Constant) -> Option<&'static str> {
    Some(match value {
        ast::Constant::Int(_) => "integer",
        ast::Constant::Float(_) => "number",
        ast::Constant::Str(_) => "string",
        ast::Constant::Bool(_) => "boolean",
        _ => return None,
    })
}

/// Turns the `arguments` the model wrote into a full object schema. AG2 asks for the
/// `properties` map (`{"x": {"type": "string"}}`); a full `{"type": "object",
/// "properties": …}` schema is accepted as well, and so are the wrappers small models
/// put around it (a function definition `{"name", "description", "parameters": …}` or
/// an OpenAI tool `{"type": "function", "function": …}`), but only when the map as
/// written does not fit the code's parameters. `required` is set to the parameters
/// without defaults.
pub(crate) fn normalise_schema(
    arguments: &Value,
    parameters: &Parameters,
) -> Result<Value, String> {
    let Value::Object(object) = arguments else {
        return Err(format!(
            "`arguments` must be a JSON object mapping each parameter name to its JSON \
             schema; got {arguments}"
        ));
    };
    let required: Vec<Value> = parameters
        .required
        .iter()
        .map(|name| Value::String(name.clone()))
        .collect();
    let schema_of = |properties: Map<String, Value>| {
        serde_json::json!({
            "type": "object",
            "properties": Value::Object(properties),
            "required": required.clone(),
        })
    };
    let as_written = schema_of(properties_of(object));
    let Err(error) = check_schema_matches(&as_written, parameters) else {
        return Ok(as_written);
    };
    // A wrapper that does not fit either is refused for what it wraps.
    let Some(inner) = unwrapped(object) else {
        return Err(error);
    };
    let schema = schema_of(properties_of(inner));
    check_schema_matches(&schema, parameters)?;
    Ok(schema)
}

/// The `properties` of a full object schema, else the map itself.
fn properties_of(object: &Map<String, Value>) -> Map<String, Value> {
    let is_full_schema = object.get("type").and_then(Value::as_str) == Some("object");
    match object.get("properties") {
        Some(Value::Object(properties)) if is_full_schema => properties.clone(),
        _ => object.clone(),
    }
}

/// The parameter schema inside a function definition or an OpenAI tool.
fn unwrapped(object: &Map<String, Value>) -> Option<&Map<String, Value>> {
    let function = match object.get("function") {
        Some(Value::Object(function))
            if object.get("type").and_then(Value::as_str) == Some("function") =>
        {
            function
        }
        _ => object,
    };
    function.get("parameters").and_then(Value::as_object)
}

/// The schema is an object schema whose property names are the function's parameters.
pub(crate) fn check_schema_matches(schema: &Value, parameters: &Parameters) -> Result<(), String> {
    let properties = schema
        .get("properties")
        .and_then(Value::as_object)
        .filter(|_| schema.get("type").and_then(Value::as_str) == Some("object"))
        .ok_or_else(|| {
            format!("`arguments` must be a JSON-Schema object with `properties`; got {schema}")
        })?;
    check_property_types(properties)?;
    let declared: BTreeSet<String> = properties.keys().cloned().collect();
    let missing: Vec<&String> = parameters.required.difference(&declared).collect();
    let unknown: Vec<&String> = if parameters.takes_any_keyword {
        Vec::new()
    } else {
        declared
            .iter()
            .filter(|name| !parameters.named.contains_key(*name))
            .collect()
    };
    if missing.is_empty() && unknown.is_empty() {
        return Ok(());
    }
    let mut problems = Vec::new();
    if !missing.is_empty() {
        problems.push(format!(
            "parameters {missing:?} of the code are not in `arguments`"
        ));
    }
    if !unknown.is_empty() {
        problems.push(format!(
            "`arguments` declares {unknown:?}, which the code's function does not take \
             (its parameters are {:?})",
            parameters.named.keys().collect::<BTreeSet<_>>()
        ));
    }
    Err(problems.join("; "))
}

fn check_property_types(properties: &Map<String, Value>) -> Result<(), String> {
    for (name, property) in properties {
        let Some(kind) = property.get("type").and_then(Value::as_str) else {
            return Err(format!(
                "argument `{name}` needs a schema object with a \"type\"; got {property}"
            ));
        };
        if !ARGUMENT_TYPES.contains(&kind) {
            return Err(format!(
                "argument `{name}` has type {kind:?}; use one of {ARGUMENT_TYPES:?}"
            ));
        }
        if kind == "array" && property.get("items").is_none() {
            return Err(format!(
                "argument `{name}` is an array schema missing \"items\""
            ));
        }
    }
    Ok(())
}

/// Whether `module` (or the top-level package of `module.sub`) is in CPython's
/// standard library.
fn is_standard_library(module: &str) -> bool {
    let top_level = module.split('.').next().unwrap_or(module);
    STANDARD_LIBRARY.binary_search(&top_level).is_ok()
}

/// Splits the tools' one-string `packages` ("sympy numpy", "sympy, numpy") into names,
/// dropping standard-library modules.
pub(crate) fn split_packages(packages: &str) -> Vec<String> {
    packages
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|package| !package.is_empty() && !is_standard_library(package))
        .map(str::to_owned)
        .collect()
}

/// The packages of an add/revise call. The tools ask for one string, but a missing
/// field, `null`, `""`, `[]` and the words "none" and "null" (a 1.5B optimizer wrote
/// `"packages": "none"` in 6 of its 44 rejected replies of a step) all mean "no packages",
/// and a list of strings is read as its names: refusing them would cost a retry for
/// nothing.
///
/// # Errors
/// A message naming the field when it is anything else.
pub(crate) fn packages_field(value: Option<&Value>) -> Result<Vec<String>, String> {
    match value {
        None | Some(Value::Null) => Ok(Vec::new()),
        Some(Value::String(text)) if says_none(text) => Ok(Vec::new()),
        Some(Value::String(text)) => Ok(split_packages(text)),
        Some(Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                Value::String(text) => Ok(split_packages(text)),
                other => Err(format!(
                    "`packages` must be a string of package names; got a list holding {other}"
                )),
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|names| names.concat()),
        Some(other) => Err(format!(
            "`packages` must be a string of package names (\"\" for none); got {other}"
        )),
    }
}

/// The whole field says there are none ("none", "None", "null").
fn says_none(text: &str) -> bool {
    ["none", "null"]
        .iter()
        .any(|word| text.trim().eq_ignore_ascii_case(word))
}

/// Every package is a bare name on `allowed` (a subset of the sandbox allowlist;
/// `None`: the whole allowlist).
pub(crate) fn check_packages(
    packages: &[String],
    allowed: Option<&[String]>,
) -> Result<(), String> {
    let permitted = |name: &str| match allowed {
        Some(list) => list
            .iter()
            .any(|entry| allowlisted_package(entry).is_ok_and(|entry| entry == name)),
        None => true,
    };
    for package in packages {
        if !allowlisted_package(package).is_ok_and(|name| permitted(&name)) {
            let listed: Vec<&str> = match allowed {
                Some(list) => list.iter().map(String::as_str).collect(),
                None => PACKAGE_ALLOWLIST.to_vec(),
            };
            return Err(format!(
                "package {package:?} is not allowed; learned functions may use only \
                 {listed:?} (bare names, no versions) or the standard library"
            ));
        }
    }
    Ok(())
}
