//! Hand-off reports: created as drafts, changed while drafts, submitted as immutable
//! revisions; the requests carrying a report follow its new revisions.

use ensemble_protocol::promotion::*;

use super::state::{self, Caller, ReportHead, Request, Revision};
use super::{Audit, PromotionState, bad, report, transition};
use crate::clock::unix_ms;
use serde_json::Value;

impl PromotionState {
    // ---- reports -----------------------------------------------------------------------------

    pub(super) fn handoff_create(
        &mut self,
        who: &Caller,
        req: HandoffCreateRequest,
    ) -> Result<(Handoff, Audit), PromotionError> {
        let content =
            report::check_content(&Value::Object(req.0)).map_err(PromotionError::InvalidReport)?;
        let text =
            serde_json::to_string(&content).map_err(|e| PromotionError::Store(e.to_string()))?;
        self.audit_ready()?;
        let mut change = self.change();
        let id = format!("ho-{}", change.next("handoff"));
        change.put(
            &state::head_key(&id),
            &ReportHead {
                latest: 1,
                created_by: who.subject().to_string(),
                requests: Vec::new(),
            },
        )?;
        change.put(
            &state::revision_key(&id, 1),
            &Revision {
                content: text,
                state: ReportState::Draft,
                created_at_ms: unix_ms(),
                submitted_at_ms: None,
            },
        )?;
        change.audit(transition(
            who,
            "promotion/handoff_create",
            format!("handoff:{id}"),
            format!("report {id} revision 1: {}", content.title),
        ))?;
        let audit = change.commit()?;
        Ok((self.records.handoff(&id, None)?, audit))
    }

    pub(super) fn handoff_update(
        &mut self,
        who: &Caller,
        req: HandoffUpdateInput,
    ) -> Result<(Handoff, Audit), PromotionError> {
        let mut fields = req.0;
        let id = match fields.remove("id") {
            Some(Value::String(id)) => id,
            Some(_) => return Err(bad("`id` must be a string, the report's id")),
            None => return Err(bad("`id` is missing: give the report's id")),
        };
        let new_revision = match fields.remove("new_revision") {
            None => false,
            Some(Value::Bool(b)) => b,
            Some(_) => return Err(bad("`new_revision` must be true or false")),
        };
        let head = self.records.head(&id)?;
        let latest = self.records.revision(&id, head.latest)?;
        let (number, base) = match (latest.state, new_revision) {
            (ReportState::Draft, _) => (head.latest, latest),
            (_, true) => (head.latest + 1, latest),
            (state, false) => {
                return Err(PromotionError::Conflict(format!(
                    "revision {} of `{id}` is {} and immutable; pass `new_revision: true` to \
                     start revision {} from it",
                    head.latest,
                    state,
                    head.latest + 1
                )));
            }
        };
        let mut merged = match serde_json::from_str::<Value>(&base.content) {
            Ok(Value::Object(m)) => m,
            _ => {
                return Err(PromotionError::Store(
                    "a stored report is unreadable".into(),
                ));
            }
        };
        for (k, v) in fields {
            merged.insert(k, v);
        }
        let content =
            report::check_content(&Value::Object(merged)).map_err(PromotionError::InvalidReport)?;
        let text =
            serde_json::to_string(&content).map_err(|e| PromotionError::Store(e.to_string()))?;
        self.audit_ready()?;
        let mut change = self.change();
        let created_at_ms = if number == head.latest {
            base.created_at_ms
        } else {
            unix_ms()
        };
        change.put(
            &state::revision_key(&id, number),
            &Revision {
                content: text,
                state: ReportState::Draft,
                created_at_ms,
                submitted_at_ms: None,
            },
        )?;
        if number != head.latest {
            change.put(
                &state::head_key(&id),
                &ReportHead {
                    latest: number,
                    ..head
                },
            )?;
        }
        change.audit(transition(
            who,
            "promotion/handoff_update",
            format!("handoff:{id}"),
            format!("report {id} revision {number} (draft) changed"),
        ))?;
        let audit = change.commit()?;
        Ok((self.records.handoff(&id, Some(number))?, audit))
    }

    pub(super) fn handoff_submit(
        &mut self,
        who: &Caller,
        req: HandoffSubmitRequest,
    ) -> Result<(Handoff, Audit), PromotionError> {
        let id = req.id;
        let head = self.records.head(&id)?;
        let mut latest = self.records.revision(&id, head.latest)?;
        if latest.state != ReportState::Draft {
            return Err(PromotionError::Conflict(format!(
                "revision {} of `{id}` is already {}; handoff_update with `new_revision: true` \
                 starts the next one",
                head.latest, latest.state
            )));
        }
        self.audit_ready()?;
        let number = head.latest;
        let now = unix_ms();
        latest.state = ReportState::Submitted;
        latest.submitted_at_ms = Some(now);
        let previous = self.records.latest_submitted(&id)?;
        // The requests carrying the report move to the new revision.
        let mut moved = Vec::new();
        for request_id in &head.requests {
            let mut request = self.records.request(request_id)?;
            if !matches!(request.state, RequestState::Open | RequestState::Rejected) {
                continue;
            }
            let renew = self
                .stage_gates(&request)?
                .signoffs
                .is_none_or(|s| s.renew_on_revision);
            if !renew {
                // Approvals carry over to the new revision.
                let carried: Vec<SignOff> = request
                    .current_signoffs()
                    .into_iter()
                    .filter(|s| s.decision == Decision::Approve)
                    .map(|s| SignOff {
                        revision: number,
                        ..s
                    })
                    .collect();
                request.signoffs.extend(carried);
            }
            request.handoff_revision = number;
            request.state = RequestState::Open;
            moved.push(request);
        }
        let mut change = self.change();
        change.put(&state::revision_key(&id, number), &latest)?;
        if let Some((n, mut rev)) = previous {
            rev.state = ReportState::Superseded;
            change.put(&state::revision_key(&id, n), &rev)?;
        }
        for request in &moved {
            change.put_json(&state::request_key(request.n), request)?;
        }
        change.audit(transition(
            who,
            "promotion/handoff_submit",
            format!("handoff:{id}"),
            format!(
                "report {id} revision {number} submitted{}",
                if moved.is_empty() {
                    String::new()
                } else {
                    format!(
                        "; requests {} now carry it",
                        moved.iter().map(Request::id).collect::<Vec<_>>().join(", ")
                    )
                }
            ),
        ))?;
        let audit = change.commit()?;
        Ok((self.records.handoff(&id, Some(number))?, audit))
    }
}
