//! rmcp spawns a task per request whose future holds the handler's largest request future
//! inline, and moves it several times on the way: a large handler future is copied on every
//! request, whatever the method. Ensemble's handler must not make that future larger than
//! rmcp's own default handler does.

use ensemble_runtime::mcp::McpService;
use ensemble_runtime::runtime::Runtime;
use rmcp::service::RequestContext;
use rmcp::{RoleServer, ServerHandler, Service};

/// The size of the future `f` returns, without calling it.
fn future_size<P, F, Fut>(_: &F) -> usize
where
    F: Fn(P, RequestContext<RoleServer>) -> Fut,
{
    std::mem::size_of::<Fut>()
}

/// rmcp's default handler: every method answered by rmcp itself.
#[derive(Clone)]
struct Defaults;

impl ServerHandler for Defaults {}

#[tokio::test]
async fn the_request_future_is_no_larger_than_with_rmcps_default_handler() {
    let runtime = Runtime::builder()
        .in_memory()
        .build()
        .await
        .expect("runtime");
    let ours: McpService = runtime.mcp_service();
    let ours_size = future_size(&|p, c| ours.handle_request(p, c));
    let defaults = Defaults;
    let rmcp_size = future_size(&|p, c| defaults.handle_request(p, c));
    assert!(
        ours_size <= rmcp_size,
        "McpService's request future is {ours_size} bytes, rmcp's default handler's \
         {rmcp_size}: box the state of the handler that grew (call_tool is {} bytes)",
        future_size(&|p, c| ours.call_tool(p, c)),
    );
}
