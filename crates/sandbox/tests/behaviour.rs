//! Normal behaviour: state, values, exceptions, timeouts, learned functions, pools.

use crate::session;

#[tokio::test]
async fn state_persists_across_cells() -> anyhow::Result<()> {
    let mut s = session().await;
    let first = s.run_cell("x = 6 * 7").await?;
    assert!(first.succeeded(), "{first:?}");
    let second = s.run_cell("print(x)\nx + 1").await?;
    assert_eq!(second.stdout, "42\n");
    assert_eq!(second.value.as_deref(), Some("43"));
    assert!(!second.state_reset_before);
    Ok(())
}
