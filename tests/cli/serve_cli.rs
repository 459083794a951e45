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

/// SIGTERM with a stream that never ends: health answers NOT_SERVING on new connections during the
/// drain, the stream is cut at the deadline (`--drain-timeout-secs`), the store is closed and the
/// process exits 0 instead of waiting forever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_within_its_deadline_while_a_stream_stays_open() {
    use tonic_health::pb::health_check_response::ServingStatus;
    use vigie::service::proto::{HashSet, ScreenRequest, screen_request};

    let data = tempfile::tempdir().expect("tmp");
    let dir = data.path().to_str().expect("path").to_string();
    let out = vigie()
        .args(["keys", "create", "--role", "screen", "--name", "p"])
        .args(["--data-dir", &dir])
        .output()
        .expect("keys");
    assert!(out.status.success());
    let key = String::from_utf8(out.stdout)
        .expect("utf-8")
        .trim()
        .to_string();
    let mut child = vigie()
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir", &dir])
        .args(["--log-format", "json", "--drain-timeout-secs", "3"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .expect("spawn serve");
    let mut lines = BufReader::new(child.stderr.take().expect("stderr")).lines();
    let addr = loop {
        let line = lines
            .next()
            .expect("server exited early")
            .expect("read log");
        let v: serde_json::Value = serde_json::from_str(&line).expect("JSON log");
        if v["fields"]["message"] == "vigie serving" {
            break v["fields"]["addr"].as_str().expect("addr").to_string();
        }
    };
    let rest = std::thread::spawn(move || lines.map_while(Result::ok).collect::<Vec<String>>());
    let channel = Channel::from_shared(format!("http://{addr}"))
        .expect("uri")
        .connect()
        .await
        .expect("connect");
    let mut loaded = false;
    for _ in 0..500 {
        if ScreeningClient::new(channel.clone())
            .screen(authorized_screen(&key))
            .await
            .is_ok()
        {
            loaded = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    assert!(loaded);
    // A stream whose client never closes its side.
    let (tx, rx) = tokio::sync::mpsc::channel::<ScreenRequest>(4);
    tx.send(ScreenRequest {
        input: Some(screen_request::Input::Hashes(HashSet {
            md5: "d41d8cd98f00b204e9800998ecf8427e".into(),
            ..Default::default()
        })),
        ..Default::default()
    })
    .await
    .expect("send");
    let mut outbound = tonic::Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
    outbound.metadata_mut().insert(
        "authorization",
        format!("Bearer {key}").parse().expect("header"),
    );
    let mut responses = ScreeningClient::new(channel.clone())
        .screen_stream(outbound)
        .await
        .expect("stream")
        .into_inner();
    responses
        .message()
        .await
        .expect("first answer")
        .expect("an answer");

    let pid = i32::try_from(child.id()).expect("pid");
    let signalled = std::time::Instant::now();
    // SAFETY: sending a signal to our own child process.
    assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
    // During the drain a new connection still reaches health, which says NOT_SERVING.
    let mut not_serving = false;
    for _ in 0..100 {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        let Ok(fresh) = Channel::from_shared(format!("http://{addr}"))
            .expect("uri")
            .connect()
            .await
        else {
            continue;
        };
        let status = tonic_health::pb::health_client::HealthClient::new(fresh)
            .check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            })
            .await;
        if let Ok(s) = status
            && s.into_inner().status == ServingStatus::NotServing as i32
        {
            not_serving = true;
            break;
        }
    }
    assert!(
        not_serving,
        "health was not reachable as NOT_SERVING during the drain"
    );
    // The process ends on its own, soon after the 3 s deadline.
    let mut status = None;
    while signalled.elapsed() < std::time::Duration::from_secs(20) {
        if let Some(s) = child.try_wait().expect("try_wait") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("serve was still running 20 s after SIGTERM");
    };
    let took = signalled.elapsed();
    let log = rest.join().expect("log reader");
    assert!(status.success(), "exit status {status:?}; log: {log:?}");
    assert!(took < std::time::Duration::from_secs(10), "{took:?}");
    assert!(log.iter().any(|l| l.contains("store closed")), "{log:?}");
    println!("drained and exited {} ms after SIGTERM", took.as_millis());
    drop(tx);
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
