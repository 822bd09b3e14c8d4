//! The ROMA client's credential refusals seen through the controller (issue 11.7, 11.13): the
//! object stays Pending with a clear message and no request leaves the process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod fixture;
mod support;

use std::time::Duration;

use support::Env;
use taskreset_controller::api::{Phase, SecretReference, TaskReset};

const WAIT: Duration = Duration::from_secs(20);

fn ready_message(tr: &TaskReset) -> String {
    tr.status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .map(|c| c.message.clone())
        .unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_token_with_a_line_break_stays_pending_without_a_request() {
    let env = Env::new().await;
    env.put_secret(
        "two-lines",
        &[("token", "line-one-SECRET\nline-two-SECRET")],
    )
    .await;
    let ctl = env.start_controller(&[]);
    let task = Env::task();
    env.create("two-lines", &task, |s| {
        s.credentials_secret_ref = Some(SecretReference {
            name: "two-lines".into(),
        });
    })
    .await;
    let tr = env.wait_phase("two-lines", Phase::Pending, WAIT).await;
    let message = ready_message(&tr);
    assert!(message.contains("line break"), "{message}");
    assert!(!format!("{:?}", tr.status).contains("SECRET"), "{message}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    let tr = env.wait_phase("two-lines", Phase::Pending, WAIT).await;
    assert_eq!(tr.status.unwrap().attempts.unwrap_or(0), 0, "never claimed");
    assert!(env.calls(&task).is_empty(), "no request with the token");
    // Fixed Secret: picked up without a spec change.
    env.put_secret("two-lines", &[("token", support::TOKEN)])
        .await;
    env.wait_phase("two-lines", Phase::Succeeded, WAIT).await;
    assert_eq!(env.calls(&task).len(), 1);
    ctl.stop().await;
}

/// Issue 13.4: an IAM endpoint the allow-list refuses is a configuration error, found before
/// the claim: Pending `CredentialsInvalid` naming the allow-list, not `CredentialsRejected`
/// ("the gateway rejected the credentials": nothing was sent to any gateway).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_iam_endpoint_outside_the_allow_list_stays_pending_and_gets_nothing() {
    let env = Env::new().await;
    env.roma.add_user("acme", "robot", "s3cret-pass-0001");
    let password = [
        ("username", "robot"),
        ("password", "s3cret-pass-0001"),
        ("domainName", "acme"),
    ];
    env.put_secret(
        "elsewhere",
        &[
            &password[..],
            &[("iamEndpoint", "https://iam.attacker.example")],
        ]
        .concat(),
    )
    .await;
    let ctl = env.start_controller(&["--credentials-wait-max", "1s"]);
    let task = Env::task();
    env.create("elsewhere", &task, |s| {
        s.credentials_secret_ref = Some(SecretReference {
            name: "elsewhere".into(),
        });
    })
    .await;
    let tr = env.wait_phase("elsewhere", Phase::Pending, WAIT).await;
    assert_eq!(
        Env::ready(&tr),
        ("Unknown".into(), "CredentialsInvalid".into())
    );
    let message = ready_message(&tr);
    assert!(
        message.contains("https://iam.attacker.example/ is not in the allowed IAM endpoints"),
        "{message}"
    );
    assert!(!message.contains("rejected"), "{message}");
    let status = tr.status.clone().unwrap();
    assert_eq!(status.attempts.unwrap_or(0), 0, "never claimed");
    assert!(!format!("{status:?}").contains("s3cret-pass-0001"));
    assert!(env.calls(&task).is_empty());
    assert_eq!(env.roma.iam_calls(), 0);
    // The Secret fixed (the simulator is the allowed IAM): picked up without a spec change.
    let roma = env.roma.url();
    env.put_secret(
        "elsewhere",
        &[&password[..], &[("iamEndpoint", roma.as_str())]].concat(),
    )
    .await;
    env.wait_phase("elsewhere", Phase::Succeeded, WAIT).await;
    assert_eq!(env.calls(&task).len(), 1);
    ctl.stop().await;
}

/// Issue 11.5: the IAM exchange runs before the object takes its turn, so a slow IAM holds no
/// call slot: with one slot, a TaskReset with a token created after one with an IAM password
/// calls first, while the exchange is still running.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_iam_exchange_holds_no_call_slot() {
    let env = Env::new().await;
    env.roma.add_user("acme", "robot", "s3cret-pass-0001");
    let roma = env.roma.url();
    let password = [
        ("username", "robot"),
        ("password", "s3cret-pass-0001"),
        ("domainName", "acme"),
        ("iamEndpoint", roma.as_str()),
    ];
    env.put_secret("password", &password).await;
    env.roma.set_iam_latency(Duration::from_secs(3));
    let ctl = env.start_controller(&["--max-concurrent-resets", "1"]);
    let (slow, quick) = (Env::task(), Env::task());
    env.create("slow", &slow, |s| {
        s.credentials_secret_ref = Some(SecretReference {
            name: "password".into(),
        });
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    env.create("quick", &quick, |_| {}).await;
    env.wait_phase("quick", Phase::Succeeded, WAIT).await;
    env.wait_phase("slow", Phase::Succeeded, WAIT).await;
    let (slow_at, quick_at) = (env.calls(&slow)[0].at, env.calls(&quick)[0].at);
    assert!(
        quick_at < slow_at,
        "the token's reset waited for the IAM exchange of another object"
    );
    assert_eq!(
        env.roma.iam_calls(),
        1,
        "one exchange, made before the turn"
    );
    ctl.stop().await;
}
