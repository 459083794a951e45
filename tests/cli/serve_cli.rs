//! `vigie serve` as an operator runs it: keys made with `vigie keys`, the server started as a child
//! process on 127.0.0.1:0, a client call, then SIGTERM: a clean exit that releases the store.

use crate::common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use common::authorized_screen;
use tonic::transport::Channel;
use vigie::service::proto::screening_client::ScreeningClient;

fn vigie() -> Command {
    Command::new(env!("CARGO_BIN_EXE_vigie"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_answers_then_stops_cleanly_on_sigterm() {
    let data = tempfile::tempdir().expect("tmp");
    let dir = data.path().to_str().expect("path").to_string();
    let out = vigie()
        .args([
            "keys",
            "create",
            "--role",
            "screen",
            "--name",
            "p",
            "--data-dir",
            &dir,
        ])
        .output()
        .expect("keys");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let key = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    assert!(key.starts_with("vk_"));
    let listed = vigie()
        .args(["keys", "list", "--data-dir", &dir])
        .output()
        .expect("list");
    assert!(
        !String::from_utf8_lossy(&listed.stdout).contains(&key),
        "keys are never printed again"
    );

    let mut child = vigie()
        .args([
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--data-dir",
            &dir,
            "--log-format",
            "json",
        ])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    // The server logs its address once it listens.
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited early")
            .expect("read log");
        let v: serde_json::Value =
            serde_json::from_str(&line).unwrap_or_else(|e| panic!("not JSON: {line}: {e}"));
        if v["fields"]["message"] == "vigie serving" {
            break v["fields"]["addr"].as_str().expect("addr").to_string();
        }
    };
    // While it runs, the admin CLI refuses the locked store with a clear error instead of hanging.
    let busy = vigie()
        .args(["keys", "list", "--data-dir", &dir])
        .output()
        .expect("keys list");
    assert!(!busy.status.success());
    assert!(
        String::from_utf8_lossy(&busy.stderr).contains("in use"),
        "{}",
        String::from_utf8_lossy(&busy.stderr)
    );

    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    // The index loads in the background; until then the answer is UNAVAILABLE.
    let mut answered = false;
    for _ in 0..200 {
        match ScreeningClient::new(channel.clone())
            .screen(authorized_screen(&key))
            .await
        {
            Ok(_) => {
                answered = true;
                break;
            }
            Err(e) if e.code() == tonic::Code::Unavailable => tokio::task::yield_now().await,
            Err(e) => panic!("{e:?}"),
        }
    }
    assert!(answered);
    drop(channel);

    // SIGTERM: drain, close the store, exit 0.
    let pid = i32::try_from(child.id()).expect("pid");
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    let rest: Vec<String> = lines.map_while(Result::ok).collect();
    let status = child.wait().expect("wait");
    assert!(status.success(), "exit status {status:?}; log: {rest:?}");
    assert!(rest.iter().any(|l| l.contains("store closed")), "{rest:?}");
    // The store is free again.
    let after = vigie()
        .args(["keys", "list", "--data-dir", &dir])
        .output()
        .expect("keys list");
    assert!(
        after.status.success(),
        "{}",
        String::from_utf8_lossy(&after.stderr)
    );
}
