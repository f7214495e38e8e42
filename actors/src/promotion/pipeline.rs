//! Pipeline definitions: what they may say, which one governs an artifact, and the default.

use std::collections::BTreeSet;

use ensemble_protocol::promotion::{Gates, Pipeline, PipelineSetRequest, StageDef};
use globset::{GlobBuilder, GlobMatcher};

/// The pipeline every artifact falls under until another matches it: `dev → staging →
/// production`, with no gates but the implicit ones (the version comes from the previous
/// stage; open blocker findings block).
pub fn default_pipeline() -> PipelineSetRequest {
    let stage = |name: &str| StageDef {
        name: name.into(),
        gates: Gates::default(),
    };
    PipelineSetRequest {
        name: "default".into(),
        pattern: "*".into(),
        stages: vec![stage("dev"), stage("staging"), stage("production")],
    }
}

fn matcher(pattern: &str) -> Result<GlobMatcher, globset::Error> {
    Ok(GlobBuilder::new(pattern)
        .literal_separator(false)
        .backslash_escape(true)
        .build()?
        .compile_matcher())
}

fn valid_word(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 100
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
}

/// Every problem of a pipeline definition, at once (empty: it is fine).
pub fn problems(req: &PipelineSetRequest) -> Vec<String> {
    let mut out = Vec::new();
    if !valid_word(&req.name) {
        out.push(format!(
            "`name` `{}` must be 1–100 letters, digits, `_`, `-` or `.`",
            req.name
        ));
    }
    if let Err(e) = matcher(&req.pattern) {
        out.push(format!("`pattern` `{}` is not a glob: {e}", req.pattern));
    }
    if req.stages.is_empty() {
        out.push("`stages` is empty: give at least one stage".into());
    }
    let mut seen = BTreeSet::new();
    for (i, stage) in req.stages.iter().enumerate() {
        let at = format!("`stages[{i}]` (`{}`)", stage.name);
        if !valid_word(&stage.name) {
            out.push(format!(
                "{at}: a stage name is 1–100 letters, digits, `_`, `-` or `.`"
            ));
        }
        if !seen.insert(stage.name.as_str()) {
            out.push(format!("{at}: the stage is named twice"));
        }
        let gates = &stage.gates;
        if i == 0 && gates.soak_seconds.is_some() {
            out.push(format!(
                "{at}: `soak_seconds` needs a previous stage to soak in; the first stage has none"
            ));
        }
        if let Some(schema) = &gates.schema
            && schema.trim().is_empty()
        {
            out.push(format!(
                "{at}: `gates.schema` is blank: give `name` or `name@version`"
            ));
        }
        if let Some(workflow) = &gates.workflow
            && workflow.template.trim().is_empty()
        {
            out.push(format!("{at}: `gates.workflow.template` is blank"));
        }
        if let Some(signoffs) = &gates.signoffs {
            if signoffs.roles.is_empty() {
                out.push(format!("{at}: `gates.signoffs.roles` is empty"));
            }
            let mut roles = BTreeSet::new();
            for role in &signoffs.roles {
                if role.trim().is_empty() {
                    out.push(format!("{at}: `gates.signoffs.roles` has a blank role"));
                } else if !roles.insert(role.as_str()) {
                    out.push(format!("{at}: `gates.signoffs.roles` names `{role}` twice"));
                }
            }
            if let Some(min) = signoffs.min
                && (min == 0 || min as usize > signoffs.roles.len())
            {
                out.push(format!(
                    "{at}: `gates.signoffs.min` is {min}; it must be 1–{} (the number of roles)",
                    signoffs.roles.len()
                ));
            }
        }
    }
    out
}

/// The sign-off roles of `req` that are not among the governance roles `known`: nobody could
/// ever sign in them.
pub fn unknown_roles(req: &PipelineSetRequest, known: &[String]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, stage) in req.stages.iter().enumerate() {
        let Some(signoffs) = &stage.gates.signoffs else {
            continue;
        };
        for role in signoffs.roles.iter().filter(|r| !known.contains(r)) {
            out.push(format!(
                "`stages[{i}]` (`{}`): `{role}` is not a governance role, so nobody could sign \
                 in it; the roles: {}",
                stage.name,
                known.join(", ")
            ));
        }
    }
    out
}

/// Whether `pattern` matches the artifact `name` (a bad pattern matches nothing).
pub fn matches(pattern: &str, name: &str) -> bool {
    matcher(pattern).is_ok_and(|m| m.is_match(name))
}

/// The pipeline governing `artifact` among `pipelines` (each one's latest version): the
/// longest matching pattern wins, then the first name.
pub fn governing<'a>(pipelines: &'a [Pipeline], artifact: &str) -> Option<&'a Pipeline> {
    pipelines
        .iter()
        .filter(|p| matches(&p.pattern, artifact))
        .min_by(|a, b| {
            b.pattern
                .len()
                .cmp(&a.pattern.len())
                .then_with(|| a.name.cmp(&b.name))
        })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ensemble_protocol::promotion::SignoffGate;

    fn pipeline(name: &str, pattern: &str) -> Pipeline {
        Pipeline {
            name: name.into(),
            version: 1,
            pattern: pattern.into(),
            stages: default_pipeline().stages,
            created_at_ms: 0,
            created_by: "owner".into(),
        }
    }

    #[test]
    fn the_default_pipeline_is_valid() {
        assert!(problems(&default_pipeline()).is_empty());
    }

    #[test]
    fn every_problem_is_listed() {
        let mut req = default_pipeline();
        req.name = "bad name".into();
        req.pattern = "[".into();
        req.stages[0].gates.soak_seconds = Some(60);
        req.stages[1].name = "dev".into();
        req.stages[2].gates.signoffs = Some(SignoffGate {
            roles: vec!["qa".into(), "qa".into()],
            min: Some(3),
            renew_on_revision: true,
        });
        let found = problems(&req);
        assert_eq!(found.len(), 6, "{found:#?}");
        for needle in [
            "`name`",
            "`pattern`",
            "soak_seconds",
            "named twice",
            "`qa` twice",
            "`gates.signoffs.min` is 3",
        ] {
            assert!(
                found.iter().any(|p| p.contains(needle)),
                "{needle}: {found:#?}"
            );
        }
    }

    #[test]
    fn sign_off_roles_must_be_governance_roles() {
        let mut req = default_pipeline();
        req.stages[2].gates.signoffs = Some(SignoffGate {
            roles: vec!["qa".into(), "qa_lead".into()],
            min: None,
            renew_on_revision: true,
        });
        let known = ["qa".to_string(), "developer".to_string()];
        let found = unknown_roles(&req, &known);
        assert_eq!(found.len(), 1, "{found:?}");
        assert!(
            found[0].contains("`qa_lead`") && found[0].contains("production"),
            "{found:?}"
        );
        assert!(unknown_roles(&default_pipeline(), &known).is_empty());
    }

    #[test]
    fn the_longest_matching_pattern_governs() {
        let all = [
            pipeline("default", "*"),
            pipeline("models", "models/*"),
            pipeline("llm", "models/llm-*"),
        ];
        assert_eq!(governing(&all, "models/llm-7b").unwrap().name, "llm");
        assert_eq!(governing(&all, "models/vision").unwrap().name, "models");
        assert_eq!(governing(&all, "configs/app").unwrap().name, "default");
        assert!(governing(&all[1..], "configs/app").is_none());
    }
}
