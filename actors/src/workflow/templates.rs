//! Workflow templates kept by the engine: registered durably, listed, and instantiated into
//! runs.

use std::collections::BTreeMap;

use ensemble_protocol::run::{
    RunError, TemplateInstantiateResponse, TemplateListRequest, TemplateListResponse,
    TemplateRegisterResponse, TemplateSummary,
};
use ensemble_protocol::template::{self, Template};
use serde_json::{Map, Value};

use super::journal::store_err;
use super::state::WorkflowState;

impl WorkflowState {
    pub(super) fn template(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<&Template, RunError> {
        template::select(self.templates.values(), name, version).ok_or_else(|| {
            RunError::UnknownTemplate(match version {
                Some(v) => format!("{name}@{v}"),
                None => name.to_string(),
            })
        })
    }

    pub(super) fn instantiate(
        &self,
        name: &str,
        version: Option<&str>,
        params: &Map<String, Value>,
    ) -> Result<TemplateInstantiateResponse, RunError> {
        let t = self.template(name, version)?;
        let resolve =
            |n: &str, v: Option<&str>| template::select(self.templates.values(), n, v).cloned();
        let definition = t
            .instantiate(params, &resolve)
            .map_err(RunError::Template)?;
        Ok(TemplateInstantiateResponse {
            template: t.key(),
            definition,
        })
    }

    pub(super) fn register_template(
        &mut self,
        t: Template,
    ) -> Result<TemplateRegisterResponse, RunError> {
        let problems = t.check();
        if !problems.is_empty() {
            return Err(RunError::Template(problems));
        }
        let key = t.key();
        if let Some(existing) = self.templates.get(&key) {
            return if *existing == t {
                Ok(TemplateRegisterResponse {
                    name: t.name,
                    version: t.version,
                    created: false,
                })
            } else {
                Err(RunError::TemplateConflict(key))
            };
        }
        let json = serde_json::to_string(&t)
            .map_err(|e| RunError::BadRequest(format!("the template cannot be encoded: {e}")))?;
        self.journal
            .insert(format!("tpl/{key}").as_bytes(), &json)
            .map_err(store_err)?;
        let answer = TemplateRegisterResponse {
            name: t.name.clone(),
            version: t.version.clone(),
            created: true,
        };
        self.templates.insert(key, t);
        Ok(answer)
    }

    pub(super) fn list_templates(&self, req: TemplateListRequest) -> TemplateListResponse {
        let mut by_name: BTreeMap<&str, Vec<&Template>> = BTreeMap::new();
        for t in self.templates.values() {
            if req.prefix.as_deref().is_none_or(|p| t.name.starts_with(p)) {
                by_name.entry(t.name.as_str()).or_default().push(t);
            }
        }
        let templates = by_name
            .into_iter()
            .filter_map(|(name, mut ts)| {
                ts.sort_by_key(|t| semver::Version::parse(&t.version).ok());
                let latest = template::select(ts.iter().copied(), name, None)?;
                Some(TemplateSummary {
                    name: name.to_string(),
                    versions: ts.iter().map(|t| t.version.clone()).collect(),
                    latest: latest.version.clone(),
                    description: latest.description.clone(),
                })
            })
            .collect();
        TemplateListResponse { templates }
    }
}
