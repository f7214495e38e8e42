//! Governance in the MCP handler: the caller of each request, and what it may see and use.
//!
//! HTTP requests carry their caller in the request's extensions (put there by
//! [`crate::governance::http::HttpAuth`]); a stdio connection is the handler's own identity.
//! What a caller may not use is hidden: left out of every list, and answered exactly as a name
//! that does not exist.

use ensemble_actors::governance::policy::Kind;
use rmcp::ErrorData;

use super::McpService;
use crate::governance::http::EdgeAdmitted;
use crate::governance::{Admission, Governance, Identity};

impl McpService {
    /// Governs this handler: `default` is who a request without an authenticated caller is
    /// (the stdio client, or nobody over HTTP).
    pub fn with_governance(mut self, governance: Governance, default: Identity) -> Self {
        self.governance = governance;
        self.identity = default;
        self
    }

    /// The governance this handler applies.
    pub fn governance(&self) -> &Governance {
        &self.governance
    }

    /// Who sent the request whose extensions these are.
    pub(crate) fn caller(&self, extensions: &rmcp::model::Extensions) -> Identity {
        extensions
            .get::<axum::http::request::Parts>()
            .and_then(|p| p.extensions.get::<Identity>())
            .unwrap_or(&self.identity)
            .clone()
    }

    /// Whether `who` may use `name`. Ungoverned: always.
    pub(crate) fn may(&self, who: &Identity, kind: Kind, name: &str) -> bool {
        !self.governance.is_governed() || self.governance.allows(who, kind, name)
    }

    /// Whether the HTTP edge already admitted this request's call (and counted it).
    pub(crate) fn admitted_at_edge(extensions: &rmcp::model::Extensions) -> bool {
        extensions
            .get::<axum::http::request::Parts>()
            .is_some_and(|p| p.extensions.get::<EdgeAdmitted>().is_some())
    }

    /// The caller of a `tools/call`, or the error to answer: the unknown tool's own for a tool
    /// the caller may not use, a rate-limit error (code 429) for one over its limit.
    pub(crate) fn admit_call(
        &self,
        extensions: &rmcp::model::Extensions,
        tool: &str,
    ) -> Result<Identity, ErrorData> {
        let who = self.caller(extensions);
        if !self.governance.is_governed() || Self::admitted_at_edge(extensions) {
            return Ok(who);
        }
        match self.governance.admit(&who, tool) {
            Admission::Allowed => Ok(who),
            Admission::Hidden(_) => {
                metrics::counter!("ensemble_governance_denials_total", "kind" => "tool")
                    .increment(1);
                Err(crate::convert::unknown_tool(tool))
            }
            Admission::Limited(limited) => Err(limited.to_error(tool)),
            Admission::Refused(refusal) => Err(refusal.to_error()),
        }
    }

    /// Whether a plain call of `tool` may take a fast lane: the caller may use it, and it
    /// counts against no rate limit unless the HTTP edge already counted it (a lane has no
    /// room for a refusal; rmcp's path answers it).
    pub(crate) fn lane_may(&self, who: &Identity, tool: &str, counted: bool) -> bool {
        if !self.governance.is_governed() {
            return true;
        }
        !self.governance.is_edge_tool(tool)
            && self.governance.shows_tool(who, tool)
            && (counted || !self.governance.is_limited(who, tool))
    }

    /// `Err` (the missing resource's own error) unless `who` may read `uri`.
    pub(crate) fn admit_resource(&self, who: &Identity, uri: &str) -> Result<(), ErrorData> {
        if self.may(who, Kind::Resource, uri) {
            return Ok(());
        }
        metrics::counter!("ensemble_governance_denials_total", "kind" => "resource").increment(1);
        Err(crate::convert::resource_error(
            crate::router::catalog::ResourceError::NotFound(format!(
                "no resource at {uri}; resources/list and resources/templates/list show what \
                 this server has"
            )),
            uri,
        ))
    }
}
