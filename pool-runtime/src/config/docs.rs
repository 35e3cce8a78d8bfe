//! Generated documentation of the variables a config reads: Markdown, a
//! `.env` template and JSON, and a check that a checked-in copy is current.

use std::fmt::Write as _;
use std::path::Path;

use super::{ConfigMeta, FieldSpec, Profile};
use crate::secret::redact_url;

/// The variable that makes [`assert_docs_current`] rewrite drifted files.
pub const BLESS_ENV: &str = "POOL_DOCS_BLESS";

/// One documented variable.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
#[non_exhaustive]
pub struct EnvVarDoc {
    /// Variable name.
    pub name: String,
    /// Field path (`pool_size`, `replica.pool_size`).
    pub field: String,
    /// Rust type as written.
    #[serde(rename = "type")]
    pub ty: String,
    /// The field's doc comment.
    pub description: String,
    /// What a valid value looks like.
    pub format: String,
    /// Never printed.
    pub secret: bool,
    /// Must be set: no default and not an `Option`.
    pub required: bool,
    /// The base default (redacted for secrets).
    pub default: Option<String>,
    /// Default of the development profile.
    pub development: Option<String>,
    /// Default of the test profile.
    pub test: Option<String>,
    /// Default of the production profile.
    pub production: Option<String>,
    /// Allowed range, as written.
    pub range: Option<String>,
    /// The `PoolSettings` field it sets.
    pub setting: Option<String>,
}

impl EnvVarDoc {
    /// The default of a profile (its own, else the base one).
    pub fn default_for(&self, profile: Profile) -> Option<&str> {
        let own = match profile {
            Profile::Development => &self.development,
            Profile::Test => &self.test,
            Profile::Production => &self.production,
        };
        own.as_deref().or(self.default.as_deref())
    }
}

/// Documentation of every variable a config reads.
///
/// ```
/// use pool_runtime::PoolConfig;
/// use pool_runtime::config::StandardPoolConfig;
/// let docs = StandardPoolConfig::env_docs();
/// assert!(docs.to_markdown().contains("| `DB_POOL_SIZE` |"));
/// assert!(docs.to_dotenv().contains("DATABASE_URL="));
/// assert!(docs.to_json().contains("\"name\": \"DB_MAX_OVERFLOW\""));
/// ```
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct EnvDocs {
    /// The config struct.
    pub config: String,
    /// Its doc comment.
    pub description: String,
    /// Prefix of derived names.
    pub prefix: String,
    /// The variable that picks the profile.
    pub profile_env: String,
    /// Every variable, in field order (flattened structs inline).
    pub vars: Vec<EnvVarDoc>,
}

fn redacted(secret: bool, v: Option<&str>) -> Option<String> {
    v.map(|v| if secret { redact_url(v) } else { v.to_owned() })
}

impl EnvDocs {
    pub(crate) fn build(meta: &'static ConfigMeta, prefix: Option<&str>) -> Self {
        let overridden = prefix.is_some_and(|p| p != meta.prefix);
        let prefix = prefix.unwrap_or(meta.prefix).to_owned();
        let mut vars = Vec::new();
        collect(meta, &prefix, overridden, "", &mut vars);
        Self {
            config: meta.name.to_owned(),
            description: meta.doc.to_owned(),
            prefix,
            profile_env: meta.profile_env.to_owned(),
            vars,
        }
    }

    /// A variable by name.
    pub fn var(&self, name: &str) -> Option<&EnvVarDoc> {
        self.vars.iter().find(|v| v.name == name)
    }

    /// A Markdown section: heading, description, profile note and a table.
    pub fn to_markdown(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "## {}\n", self.config);
        if !self.description.is_empty() {
            let _ = writeln!(out, "{}\n", self.description);
        }
        let _ = writeln!(
            out,
            "Profile: `{}` = `development` (when unset) \\| `test` \\| `production`. \
             Variables override the profile's defaults.\n",
            self.profile_env
        );
        let profiles: Vec<Profile> = Profile::ALL
            .into_iter()
            .filter(|p| self.vars.iter().any(|v| own_default(v, *p).is_some()))
            .collect();
        let mut header = vec!["Variable", "Type", "Required", "Default"];
        header.extend(profiles.iter().map(|p| p.name()));
        header.extend(["Range", "Description"]);
        let _ = writeln!(out, "| {} |", header.join(" | "));
        let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
        for v in &self.vars {
            let code = |s: Option<&str>| s.map_or(String::new(), |s| format!("`{}`", cell(s)));
            let mut row = vec![
                format!("`{}`", v.name),
                format!(
                    "`{}`{}",
                    cell(&v.ty),
                    if v.secret { " (secret)" } else { "" }
                ),
                if v.required { "yes" } else { "no" }.to_owned(),
                code(v.default.as_deref()),
            ];
            row.extend(profiles.iter().map(|p| code(own_default(v, *p))));
            row.push(code(v.range.as_deref()));
            row.push(cell(&v.description.replace('\n', " ")));
            let _ = writeln!(out, "| {} |", row.join(" | "));
        }
        out
    }

    /// A `.env` template: required variables empty, the others commented
    /// out with their default.
    pub fn to_dotenv(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "# {}", self.config);
        for line in self.description.lines() {
            let _ = writeln!(out, "# {line}");
        }
        let _ = writeln!(out, "#");
        let _ = writeln!(
            out,
            "# Profile: {} = development (when unset) | test | production",
            self.profile_env
        );
        let _ = writeln!(
            out,
            "# Generated by {}::env_docs(); do not edit by hand.",
            self.config
        );
        for v in &self.vars {
            let _ = writeln!(out);
            for line in v.description.lines() {
                let _ = writeln!(out, "# {line}");
            }
            let mut facts = vec![v.ty.clone()];
            if v.secret {
                facts.push("secret".to_owned());
            }
            if v.required {
                facts.push("required".to_owned());
            }
            if let Some(r) = &v.range {
                facts.push(format!("range {r}"));
            }
            let _ = writeln!(out, "# {}", facts.join(", "));
            let _ = writeln!(out, "# Format: {}", v.format);
            let per_profile: Vec<String> = Profile::ALL
                .into_iter()
                .filter_map(|p| own_default(v, p).map(|d| format!("{p}: {d}")))
                .collect();
            if !per_profile.is_empty() {
                let _ = writeln!(out, "# Profile defaults: {}.", per_profile.join(", "));
            }
            match (&v.default, v.required) {
                (_, true) => {
                    let _ = writeln!(out, "{}=", v.name);
                }
                (Some(d), false) => {
                    let _ = writeln!(out, "# {}={}", v.name, d);
                }
                (None, false) => {
                    let _ = writeln!(out, "# {}=", v.name);
                }
            }
        }
        out
    }

    /// Pretty-printed JSON.
    pub fn to_json(&self) -> String {
        let mut s = serde_json::to_string_pretty(self).unwrap_or_default();
        s.push('\n');
        s
    }

    /// Renders in the format a file's extension names: `.md`, `.json`, or
    /// `.env` (also `*.env`, `.env.example`).
    pub fn render_for(&self, path: &Path) -> Option<String> {
        let name = path.file_name()?.to_str()?;
        let ext = path.extension().and_then(|e| e.to_str()).unwrap_or("");
        match ext {
            "md" | "markdown" => Some(self.to_markdown()),
            "json" => Some(self.to_json()),
            _ if ext == "env" || name.starts_with(".env") => Some(self.to_dotenv()),
            _ => None,
        }
    }
}

fn own_default(v: &EnvVarDoc, p: Profile) -> Option<&str> {
    match p {
        Profile::Development => v.development.as_deref(),
        Profile::Test => v.test.as_deref(),
        Profile::Production => v.production.as_deref(),
    }
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

fn collect(
    meta: &'static ConfigMeta,
    prefix: &str,
    overridden: bool,
    path: &str,
    out: &mut Vec<EnvVarDoc>,
) {
    for f in meta.fields {
        let field = if path.is_empty() {
            f.field.to_owned()
        } else {
            format!("{path}.{}", f.field)
        };
        if let Some(flat) = f.flatten {
            collect(
                (flat.meta)(),
                &format!("{prefix}{}", flat.prefix),
                overridden,
                &field,
                out,
            );
            continue;
        }
        out.push(var_doc(f, prefix, overridden, field));
    }
}

fn var_doc(f: &FieldSpec, prefix: &str, overridden: bool, field: String) -> EnvVarDoc {
    let name = match f.env {
        Some(env) if !overridden => env.to_owned(),
        _ => format!("{prefix}{}", f.key),
    };
    let d = |i: usize| redacted(f.secret, f.defaults[i]);
    EnvVarDoc {
        name,
        field,
        ty: f.ty.to_owned(),
        description: f.doc.to_owned(),
        format: f.expected_text(),
        secret: f.secret,
        required: !f.optional && f.defaults.iter().all(Option::is_none),
        default: d(0),
        development: d(1),
        test: d(2),
        production: d(3),
        range: f.range.map(str::to_owned),
        setting: f.setting.map(str::to_owned),
    }
}

/// Why a checked-in file does not match.
#[derive(Debug)]
pub struct DocsDrift {
    message: String,
}

impl std::fmt::Display for DocsDrift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for DocsDrift {}

/// Compares `path` with `expected`; rewrites it instead when
/// `POOL_DOCS_BLESS=1` is set (creating directories as needed).
pub fn check_file_current(path: impl AsRef<Path>, expected: &str) -> Result<(), DocsDrift> {
    let path = path.as_ref();
    let bless = std::env::var(BLESS_ENV).is_ok_and(|v| !v.is_empty() && v != "0");
    let current = std::fs::read_to_string(path);
    if current.as_deref().ok() == Some(expected) {
        return Ok(());
    }
    if bless {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| DocsDrift {
                message: format!("cannot create {}: {e}", dir.display()),
            })?;
        }
        return std::fs::write(path, expected).map_err(|e| DocsDrift {
            message: format!("cannot write {}: {e}", path.display()),
        });
    }
    let detail = match current {
        Err(e) => format!("cannot read it: {e}"),
        Ok(current) => {
            let (line, have, want) = first_difference(&current, expected);
            format!("first difference at line {line}:\n  file:      {have}\n  generated: {want}")
        }
    };
    Err(DocsDrift {
        message: format!(
            "{} is out of date with the generated env docs; {detail}\nrun the test again with {BLESS_ENV}=1 to rewrite it",
            path.display()
        ),
    })
}

fn first_difference(a: &str, b: &str) -> (usize, String, String) {
    let mut la = a.lines();
    let mut lb = b.lines();
    let mut n = 1;
    loop {
        match (la.next(), lb.next()) {
            (Some(x), Some(y)) if x == y => n += 1,
            (None, None) => return (n, "(trailing newline differs)".into(), String::new()),
            (x, y) => {
                return (
                    n,
                    x.unwrap_or("(end of file)").to_owned(),
                    y.unwrap_or("(end of file)").to_owned(),
                );
            }
        }
    }
}

/// Panics (for use in a test) when `path` differs from `docs` rendered in
/// the format its extension names (`.md`, `.json`, `.env`); rewrites it
/// instead when `POOL_DOCS_BLESS=1`.
///
/// ```no_run
/// use pool_runtime::PoolConfig;
/// use pool_runtime::config::{StandardPoolConfig, assert_docs_current};
/// assert_docs_current("docs/env.md", &StandardPoolConfig::env_docs());
/// ```
#[track_caller]
pub fn assert_docs_current(path: impl AsRef<Path>, docs: &EnvDocs) {
    let path = path.as_ref();
    let Some(rendered) = docs.render_for(path) else {
        panic!(
            "{}: unknown docs format; use a .md, .json or .env file name",
            path.display()
        );
    };
    if let Err(e) = check_file_current(path, &rendered) {
        panic!("{e}");
    }
}
