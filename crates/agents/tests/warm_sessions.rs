//! `SandboxSessions::warm`: sessions forked ahead from a fork server started at
//! once, each as fresh as one from `SandboxSessions::new`.

use agentopt_sandbox::{ExecutorFactory, SandboxPolicy, SandboxSessions};

use crate::python_environment;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn warm_sessions_share_nothing_with_earlier_ones() {
    let policy = SandboxPolicy {
        preload: Vec::new(),
        ..SandboxPolicy::default()
    };
    let sessions = match SandboxSessions::warm(python_environment(), policy, 2) {
        Ok(sessions) => sessions,
        Err(error) => panic!("warm sessions: {error}"),
    };
    let mut first = sessions.start().await.expect("first session");
    let left_behind = "secret = 41\nopen('left.txt', 'w').write('x')\n\
                       import subprocess\nsubprocess.Popen(['sleep', '61.5'])\nprint('ok')";
    let outcome = first.run_cell(left_behind).await.expect("first cell");
    assert_eq!(outcome.stdout.trim(), "ok", "{outcome:?}");
    drop(first);

    let mut second = sessions.start().await.expect("second session");
    let probe = "import os\nprint('secret' in globals(), os.path.exists('left.txt'), \
                 any('61.5' in open(f'/proc/{p}/cmdline').read().split(chr(0)) \
                 for p in os.listdir('/proc') if p.isdigit()))";
    let outcome = second.run_cell(probe).await.expect("probe");
    assert_eq!(outcome.stdout.trim(), "False False False", "{outcome:?}");
}
