//! Replicas sharing their banks through NATS JetStream, with real processes: a 3-node
//! `nats-server` cluster and `vigie serve --nats` replicas on loopback, each with its own ports and
//! data directory, started, killed and restarted by the test. Every wait is a bounded poll with a
//! deadline. Skips (with a message) only when no `nats-server` can be found; `scripts/setup.sh`
//! installs one, so CI runs it.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use tonic::Code;
use tonic::transport::Channel;
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use vigie::cluster::local::{LocalNats, find_nats_server, free_ports};
use vigie::service::proto::banks_client::BanksClient;
use vigie::service::proto::keys_client::KeysClient;
use vigie::service::proto::screening_client::ScreeningClient;
use vigie::service::proto::*;

const STREAM: &str = "VIGIE_TEST";
/// The stream keeps this many changes: the test writes several times more, so replicas that
/// were away, and the one that joins last, must start from a snapshot.
const MAX_CHANGES: u64 = 120;

/// One `vigie serve --nats` process.
struct Replica {
    name: String,
    data: PathBuf,
    log: PathBuf,
    port: u16,
    metrics_port: u16,
    http_port: u16,
    nats: String,
    child: Option<Child>,
}

impl Replica {
    fn new(root: &Path, name: &str, nats: &str) -> Replica {
        let ports = free_ports(3).expect("ports");
        Replica {
            name: name.into(),
            data: root.join(name).join("data"),
            log: root.join(format!("{name}.log")),
            port: ports[0],
            metrics_port: ports[1],
            http_port: ports[2],
            nats: nats.into(),
            child: None,
        }
    }

    fn spawn(&mut self) {
        std::fs::create_dir_all(self.data.parent().expect("parent")).expect("dir");
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log");
        let child = Command::new(env!("CARGO_BIN_EXE_vigie"))
            .args(["serve", "--insecure-no-auth", "--keypoints", "false"])
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args([
                "--metrics-listen",
                &format!("127.0.0.1:{}", self.metrics_port),
            ])
            .args(["--http-listen", &format!("127.0.0.1:{}", self.http_port)])
            .arg("--data-dir")
            .arg(&self.data)
            .args(["--nats", &self.nats, "--nats-stream", STREAM])
            .args(["--nats-replicas", "3", "--nats-write-timeout-ms", "2000"])
            .args(["--nats-snapshot-changes", "30"])
            .args(["--nats-max-changes", &MAX_CHANGES.to_string()])
            .env("RUST_LOG", "info")
            // The log's tail is what a failure shows: the error, not a backtrace's frames.
            .env("RUST_BACKTRACE", "0")
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("vigie starts");
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            child.kill().expect("kill");
            child.wait().expect("reap");
        }
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    async fn channel(&self) -> Channel {
        Channel::from_shared(format!("http://127.0.0.1:{}", self.port))
            .expect("uri")
            .connect_timeout(Duration::from_secs(2))
            .connect_lazy()
    }

    async fn banks(&self) -> BanksClient<Channel> {
        BanksClient::new(self.channel().await)
    }

    async fn screening(&self) -> ScreeningClient<Channel> {
        ScreeningClient::new(self.channel().await)
    }

    /// Poll health until SERVING.
    async fn wait_serving(&self, within: Duration) {
        let until = Instant::now() + within;
        loop {
            let mut health = HealthClient::new(self.channel().await);
            let status = health
                .check(HealthCheckRequest {
                    service: String::new(),
                })
                .await
                .map(|r| r.into_inner().status)
                .map_err(|e| e.code());
            if status == Ok(ServingStatus::Serving as i32) {
                return;
            }
            assert!(
                Instant::now() < until,
                "{} not SERVING within {within:?} ({status:?}); its log:\n{}",
                self.name,
                self.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// One metric's value from `/metrics`.
    fn metric(&self, name: &str) -> Option<f64> {
        let mut s = TcpStream::connect(("127.0.0.1", self.metrics_port)).ok()?;
        s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
        s.write_all(b"GET /metrics HTTP/1.0\r\n\r\n").ok()?;
        let mut text = String::new();
        s.read_to_string(&mut text).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
    }
}

impl Drop for Replica {
    fn drop(&mut self) {
        self.kill();
    }
}

fn random_pdq(rng: &mut u64) -> String {
    let mut out = String::with_capacity(64);
    for _ in 0..4 {
        // SplitMix64: distinct, well-spread hashes far apart from each other.
        *rng = rng.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = *rng;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        out.push_str(&format!("{:016x}", z ^ (z >> 31)));
    }
    out
}

fn entry(external_id: &str, pdq: &str) -> NewEntry {
    NewEntry {
        external_id: external_id.into(),
        content: Some(new_entry::Content::Hashes(HashSet {
            pdq: pdq.into(),
            ..Default::default()
        })),
        label: "test".into(),
        ..Default::default()
    }
}

async fn add(
    client: &mut BanksClient<Channel>,
    bank: &str,
    entries: Vec<NewEntry>,
    deadline: Duration,
) -> Result<AddEntriesResponse, tonic::Status> {
    let mut request = tonic::Request::new(AddEntriesRequest {
        bank: bank.into(),
        entries,
    });
    request.set_timeout(deadline);
    client.add_entries(request).await.map(|r| r.into_inner())
}

async fn screen_matches(client: &mut ScreeningClient<Channel>, pdq: &str) -> Option<bool> {
    let mut request = tonic::Request::new(ScreenRequest {
        input: Some(screen_request::Input::Hashes(HashSet {
            pdq: pdq.into(),
            ..Default::default()
        })),
        ..Default::default()
    });
    request.set_timeout(Duration::from_secs(5));
    client
        .screen(request)
        .await
        .ok()
        .map(|r| r.into_inner().matched)
}

/// Poll a Screen of `pdq` on `replica` until it matches; returns how long it took.
async fn until_matched(replica: &Replica, pdq: &str, within: Duration) -> Duration {
    let started = Instant::now();
    let mut screening = replica.screening().await;
    loop {
        if screen_matches(&mut screening, pdq).await == Some(true) {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < within,
            "{} never matched {pdq}; its log:\n{}",
            replica.name,
            replica.log_tail()
        );
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
}

/// A digest of every API key (name, role, time, revoked), every bank and every entry (all fields,
/// ids included) as the replica serves them.
async fn digest(replica: &Replica) -> (String, usize) {
    let mut client = replica.banks().await;
    let banks = client
        .list_banks(ListBanksRequest {})
        .await
        .expect("list banks")
        .into_inner()
        .banks;
    let mut sha = Sha256::new();
    let keys = KeysClient::new(replica.channel().await)
        .list_keys(ListKeysRequest {})
        .await
        .expect("list keys")
        .into_inner()
        .keys;
    for k in keys {
        sha.update(format!(
            "key {}|{}|{}|{}\n",
            k.name, k.role, k.created_at, k.revoked
        ));
    }
    let mut entries = 0;
    for bank in banks {
        sha.update(format!(
            "{}|{}|{}|{}\n",
            bank.name, bank.enabled, bank.kind, bank.created_at
        ));
        let mut token = String::new();
        loop {
            let page = client
                .list_entries(ListEntriesRequest {
                    bank: bank.name.clone(),
                    page_size: 500,
                    page_token: token.clone(),
                    label: String::new(),
                })
                .await
                .expect("list entries")
                .into_inner();
            for e in &page.entries {
                sha.update(format!("{e:?}\n"));
                entries += 1;
            }
            if page.next_page_token.is_empty() {
                break;
            }
            token = page.next_page_token;
        }
    }
    let hex: String = sha.finalize().iter().map(|b| format!("{b:02x}")).collect();
    (hex, entries)
}

/// Wait until every replica has applied the same last sequence, then compare their digests.
async fn assert_converged(replicas: &[&Replica], within: Duration) -> (String, usize) {
    let until = Instant::now() + within;
    loop {
        let seqs: Vec<Option<f64>> = replicas
            .iter()
            .map(|r| r.metric("vigie_cluster_applied_sequence"))
            .collect();
        let heads: Vec<Option<f64>> = replicas
            .iter()
            .map(|r| r.metric("vigie_cluster_head_sequence"))
            .collect();
        let settled = seqs.iter().all(|s| s.is_some() && *s == seqs[0])
            && heads.iter().all(|h| *h == seqs[0]);
        if settled {
            break;
        }
        assert!(
            Instant::now() < until,
            "replicas did not converge within {within:?}: applied {seqs:?}, heads {heads:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut digests = Vec::new();
    for r in replicas {
        digests.push(digest(r).await);
    }
    for (r, d) in replicas.iter().zip(&digests) {
        assert_eq!(
            d, &digests[0],
            "{} differs from {}",
            r.name, replicas[0].name
        );
    }
    digests.swap_remove(0)
}

/// External ids acknowledged by writes, with their hash.
type Acked = Arc<Mutex<BTreeMap<String, String>>>;

/// Check that every acknowledged write is on `replica` with its hash.
async fn assert_has_all(replica: &Replica, bank: &str, acked: &Acked) {
    let expected = acked.lock().expect("lock").clone();
    let mut client = replica.banks().await;
    for (external_id, pdq) in expected {
        let got = client
            .get_entry(GetEntryRequest {
                key: Some(get_entry_request::Key::External(ExternalKey {
                    bank: bank.into(),
                    external_id: external_id.clone(),
                })),
            })
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "{}: acknowledged {external_id} is missing: {e}",
                    replica.name
                )
            })
            .into_inner();
        assert_eq!(
            got.hashes.map(|h| h.pdq),
            Some(pdq),
            "{}: {external_id}",
            replica.name
        );
    }
}

/// A writer adding one entry per call to `bank` on `replica`, recording what was acknowledged,
/// until `stop` or `calls` calls.
fn spawn_writer(
    replica_port: u16,
    bank: &'static str,
    prefix: String,
    calls: usize,
    acked: Acked,
    stop: Arc<std::sync::atomic::AtomicBool>,
) -> tokio::task::JoinHandle<(usize, usize)> {
    tokio::spawn(async move {
        let channel = Channel::from_shared(format!("http://127.0.0.1:{replica_port}"))
            .expect("uri")
            .connect_timeout(Duration::from_secs(1))
            .connect_lazy();
        let mut client = BanksClient::new(channel);
        let mut rng = prefix.len() as u64 * 7919 + replica_port as u64;
        let (mut ok, mut failed) = (0, 0);
        for i in 0..calls {
            if stop.load(std::sync::atomic::Ordering::Relaxed) {
                break;
            }
            let id = format!("{prefix}-{i}");
            let pdq = random_pdq(&mut rng);
            match add(
                &mut client,
                bank,
                vec![entry(&id, &pdq)],
                Duration::from_secs(10),
            )
            .await
            {
                Ok(_) => {
                    acked.lock().expect("lock").insert(id, pdq);
                    ok += 1;
                }
                Err(_) => {
                    failed += 1;
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
        }
        (ok, failed)
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replicas_share_banks_through_jetstream_and_survive_faults() {
    let Some(binary) = find_nats_server() else {
        eprintln!(
            "SKIPPED: nats-server not found (run scripts/setup.sh, or set VIGIE_NATS_SERVER): the cluster tests need a real NATS cluster"
        );
        return;
    };
    let root = tempfile::tempdir().expect("tmp");
    let mut nats = LocalNats::start(&binary, &root.path().join("nats"), 3, 8 << 20)
        .expect("NATS cluster starts");
    let urls = nats.urls();
    let mut a = Replica::new(root.path(), "a", &urls);
    let mut b = Replica::new(root.path(), "b", &urls);
    let mut c = Replica::new(root.path(), "c", &urls);
    for r in [&mut a, &mut b, &mut c] {
        r.spawn();
    }
    for r in [&a, &b, &c] {
        r.wait_serving(Duration::from_secs(60)).await;
    }

    // 1. An entry added on A is matched on A at once (read your writes), then on B and C.
    let mut client_a = a.banks().await;
    client_a
        .create_bank(CreateBankRequest {
            name: "shared".into(),
            ..Default::default()
        })
        .await
        .expect("bank created through the cluster");
    let mut rng = 42u64;
    let first = random_pdq(&mut rng);
    add(
        &mut client_a,
        "shared",
        vec![entry("first", &first)],
        Duration::from_secs(10),
    )
    .await
    .expect("entry added");
    assert_eq!(
        screen_matches(&mut a.screening().await, &first).await,
        Some(true),
        "a write is visible on its replica when the call returns"
    );
    let mut propagation = Vec::new();
    for _ in 0..20 {
        let pdq = random_pdq(&mut rng);
        let written = Instant::now();
        add(
            &mut client_a,
            "shared",
            vec![entry(&format!("p-{pdq}"), &pdq)],
            Duration::from_secs(10),
        )
        .await
        .expect("entry added");
        let ack = written.elapsed();
        let on_b = until_matched(&b, &pdq, Duration::from_secs(10)).await;
        let on_c = until_matched(&c, &pdq, Duration::from_secs(10)).await;
        propagation.push((ack, on_b.max(on_c)));
    }
    propagation.sort_by_key(|p| p.1);
    eprintln!(
        "propagation (write on A acknowledged -> matched on B and C), 20 writes: median ack {:?}, median {:?}, max {:?}",
        {
            let mut acks: Vec<_> = propagation.iter().map(|p| p.0).collect();
            acks.sort();
            acks[acks.len() / 2]
        },
        propagation[propagation.len() / 2].1,
        propagation[propagation.len() - 1].1
    );

    // 2. Concurrent writers on all three replicas, some to the same external ids: same state.
    let mut writers = Vec::new();
    for (w, r) in [&a, &b, &c].into_iter().enumerate() {
        let port = r.port;
        writers.push(tokio::spawn(async move {
            let channel = Channel::from_shared(format!("http://127.0.0.1:{port}"))
                .expect("uri")
                .connect_lazy();
            let mut client = BanksClient::new(channel);
            let mut rng = 1000 + w as u64;
            for k in 0..25 {
                let entries = (0..4)
                    .map(|j| {
                        let id = if j == 0 {
                            format!("same-{}", k % 5)
                        } else {
                            format!("w{w}-{k}-{j}")
                        };
                        entry(&id, &random_pdq(&mut rng))
                    })
                    .collect();
                add(&mut client, "shared", entries, Duration::from_secs(10))
                    .await
                    .expect("concurrent add");
            }
        }));
    }
    for w in writers {
        w.await.expect("writer");
    }
    let (_, count) = assert_converged(&[&a, &b, &c], Duration::from_secs(30)).await;
    assert_eq!(
        count,
        21 + 5 + 3 * 25 * 3,
        "every distinct external id once"
    );

    // 2b. Imports and API keys are bank changes too: an import on A and a key made on B reach
    //     every replica. A publish sent again with its message id (a retry) is stored once.
    client_a
        .create_bank(CreateBankRequest {
            name: "imported".into(),
            ..Default::default()
        })
        .await
        .expect("bank created through the cluster");
    let imported: Vec<String> = (0..30).map(|_| random_pdq(&mut rng)).collect();
    let lines: String = imported
        .iter()
        .enumerate()
        .map(|(i, pdq)| format!("pdq {pdq} imp-{i}\n"))
        .collect();
    let summary = client_a
        .import_entries(tokio_stream::iter(vec![ImportEntriesRequest {
            bank: "imported".into(),
            format: "signal-lines".into(),
            data: lines.into_bytes(),
            ..Default::default()
        }]))
        .await
        .expect("import through the cluster")
        .into_inner();
    assert_eq!((summary.added, summary.failed), (30, 0), "{summary:?}");
    let created = KeysClient::new(b.channel().await)
        .create_key(CreateKeyRequest {
            name: "from-b".into(),
            role: "screen".into(),
        })
        .await
        .expect("key created through the cluster")
        .into_inner();
    assert!(!created.key.is_empty());
    for r in [&a, &b, &c] {
        until_matched(r, &imported[29], Duration::from_secs(10)).await;
        let until = Instant::now() + Duration::from_secs(10);
        loop {
            let keys = KeysClient::new(r.channel().await)
                .list_keys(ListKeysRequest {})
                .await
                .expect("list keys")
                .into_inner()
                .keys;
            if keys
                .iter()
                .any(|k| k.name == "from-b" && k.role == "screen")
            {
                break;
            }
            assert!(
                Instant::now() < until,
                "{}: the key made on B never arrived: {keys:?}",
                r.name
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    let js = async_nats::jetstream::new(
        async_nats::connect(urls.split(',').map(str::to_string).collect::<Vec<_>>())
            .await
            .expect("NATS client"),
    );
    let payload = vigie::cluster::envelope::encode(
        &vigie::store::Change::CreateBank {
            bank: vigie::store::NewBank {
                name: "published-twice".into(),
                ..Default::default()
            },
        },
        &vigie::store::Origin::now("test"),
    )
    .expect("envelope");
    let mut acks = Vec::new();
    for _ in 0..2 {
        let publish = async_nats::jetstream::message::PublishMessage::build()
            .payload(payload.clone().into())
            .message_id("retried-publish-1");
        let ack = js
            .send_publish(format!("{STREAM}.changes"), publish)
            .await
            .expect("publish")
            .await
            .expect("acknowledged");
        acks.push((ack.sequence, ack.duplicate));
    }
    assert_eq!(acks[1], (acks[0].0, true), "the retry is the same message");
    let (_, count) = assert_converged(&[&a, &b, &c], Duration::from_secs(30)).await;
    assert_eq!(count, 21 + 5 + 3 * 25 * 3 + 30);
    let banks = b
        .banks()
        .await
        .list_banks(ListBanksRequest {})
        .await
        .expect("list banks")
        .into_inner()
        .banks;
    assert_eq!(
        banks.iter().filter(|b| b.name == "published-twice").count(),
        1
    );

    // 3. SIGKILL a replica while writes go on; restarted, it has every acknowledged write.
    let acked: Acked = Arc::default();
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let on_a = spawn_writer(
        a.port,
        "shared",
        "kill-a".into(),
        150,
        acked.clone(),
        stop.clone(),
    );
    let on_c = spawn_writer(
        c.port,
        "shared",
        "kill-c".into(),
        150,
        acked.clone(),
        stop.clone(),
    );
    let until = Instant::now() + Duration::from_secs(30);
    while acked.lock().expect("lock").len() < 40 {
        assert!(Instant::now() < until, "writes do not progress");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    c.kill();
    let (ok_a, _) = on_a.await.expect("writer a");
    let (ok_c, _) = on_c.await.expect("writer c");
    assert_eq!(ok_a, 150, "writes on A go on while C is down");
    assert!(
        ok_c > 0,
        "some writes on C were acknowledged before it died"
    );
    c.spawn();
    c.wait_serving(Duration::from_secs(60)).await;
    assert_has_all(&c, "shared", &acked).await;
    assert_converged(&[&a, &b, &c], Duration::from_secs(30)).await;

    // 4. One NATS node down: writes go on. Two down: UNAVAILABLE within the deadline, screens go
    //    on. Both back: writes resume, nothing acknowledged is lost.
    nats.kill(0).expect("kill n1");
    let mut client_b = b.banks().await;
    let until = Instant::now() + Duration::from_secs(30);
    let mut n = 0;
    loop {
        let pdq = random_pdq(&mut rng);
        let id = format!("one-down-{n}");
        n += 1;
        match add(
            &mut client_b,
            "shared",
            vec![entry(&id, &pdq)],
            Duration::from_secs(10),
        )
        .await
        {
            Ok(_) => {
                acked.lock().expect("lock").insert(id, pdq);
                break;
            }
            Err(e) => assert!(
                Instant::now() < until,
                "writes did not resume with one NATS node down: {e}"
            ),
        }
    }
    for i in 0..20 {
        let pdq = random_pdq(&mut rng);
        let id = format!("one-down-ok-{i}");
        add(
            &mut client_b,
            "shared",
            vec![entry(&id, &pdq)],
            Duration::from_secs(10),
        )
        .await
        .unwrap_or_else(|e| panic!("write {i} with one NATS node down: {e}"));
        acked.lock().expect("lock").insert(id, pdq);
    }
    nats.kill(1).expect("kill n2");
    for r in [&a, &b, &c] {
        let pdq = random_pdq(&mut rng);
        let deadline = Duration::from_secs(10);
        let started = Instant::now();
        let e = add(
            &mut r.banks().await,
            "shared",
            vec![entry("no-quorum", &pdq)],
            deadline,
        )
        .await
        .expect_err("no write is acknowledged without the stream's quorum");
        assert_eq!(e.code(), Code::Unavailable, "{}: {e}", r.name);
        assert!(
            started.elapsed() < deadline,
            "{}: answered in {:?}",
            r.name,
            started.elapsed()
        );
        assert_eq!(
            screen_matches(&mut r.screening().await, &first).await,
            Some(true),
            "{}: screens go on without the quorum",
            r.name
        );
    }
    nats.restart(0).expect("n1 back");
    nats.restart(1).expect("n2 back");
    let until = Instant::now() + Duration::from_secs(60);
    let mut n = 0;
    loop {
        let pdq = random_pdq(&mut rng);
        let id = format!("back-{n}");
        n += 1;
        match add(
            &mut client_b,
            "shared",
            vec![entry(&id, &pdq)],
            Duration::from_secs(10),
        )
        .await
        {
            Ok(_) => {
                acked.lock().expect("lock").insert(id, pdq);
                break;
            }
            Err(e) => assert!(
                Instant::now() < until,
                "writes did not resume after the NATS nodes came back: {e}"
            ),
        }
    }
    let (digest_abc, _) = assert_converged(&[&a, &b, &c], Duration::from_secs(60)).await;
    for r in [&a, &b, &c] {
        assert_has_all(r, "shared", &acked).await;
    }

    // 5. A new replica joins after the stream's retention dropped its start: it starts from a
    //    snapshot and catches up.
    let client = async_nats::connect(urls.split(',').map(str::to_string).collect::<Vec<_>>())
        .await
        .expect("NATS client");
    let mut stream = async_nats::jetstream::new(client)
        .get_stream(STREAM)
        .await
        .expect("stream");
    let state = stream.info().await.expect("stream info").state.clone();
    assert!(
        state.first_sequence > 1 && state.messages <= MAX_CHANGES,
        "the stream's start was cut: {state:?}"
    );
    let mut d = Replica::new(root.path(), "d", &urls);
    let joined = Instant::now();
    d.spawn();
    d.wait_serving(Duration::from_secs(60)).await;
    eprintln!("a new replica was ready in {:?}", joined.elapsed());
    assert!(
        d.metric("vigie_cluster_restored_sequence")
            .is_some_and(|s| s >= 1.0),
        "d started from a snapshot"
    );
    let (digest_d, _) = assert_converged(&[&a, &d], Duration::from_secs(30)).await;
    assert_eq!(digest_d, digest_abc);
    assert_has_all(&d, "shared", &acked).await;

    // 6. The HTTP edge of a replica: 200 on /status once it serves, and its writes go through the
    //    stream like gRPC's (a bank made over HTTP on D is on A).
    assert_eq!(
        http_get(d.http_port, "/status"),
        Some((200, "\"I-AM-ALIVE\"".to_string()))
    );
    let (code, body) = http_request(
        d.http_port,
        "POST",
        "/v1/banks",
        r#"{"name":"made-over-http"}"#,
    )
    .expect("HTTP answer");
    assert_eq!(code, 200, "{body}");
    let until = Instant::now() + Duration::from_secs(10);
    loop {
        let banks = a
            .banks()
            .await
            .list_banks(ListBanksRequest {})
            .await
            .expect("list banks")
            .into_inner()
            .banks;
        if banks.iter().any(|b| b.name == "made-over-http") {
            break;
        }
        assert!(
            Instant::now() < until,
            "a bank made over HTTP on D never reached A"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_converged(&[&a, &b, &c, &d], Duration::from_secs(30)).await;
}

/// `GET path` on `127.0.0.1:port` over HTTP/1.0: the status code and the body.
fn http_get(port: u16, path: &str) -> Option<(u16, String)> {
    http_request(port, "GET", path, "")
}

/// `method path` with a JSON `body` on `127.0.0.1:port` over HTTP/1.0: the status code and the
/// body of the answer.
fn http_request(port: u16, method: &str, path: &str, body: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(
        format!(
            "{method} {path} HTTP/1.0\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
            body.len()
        )
        .as_bytes(),
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    let code = text.split_whitespace().nth(1)?.parse().ok()?;
    let body = text
        .split("\r\n\r\n")
        .nth(1)
        .unwrap_or_default()
        .to_string();
    Some((code, body))
}

/// A replica's server (gRPC health and HTTP `/status`, `/readyz`) follows the replica's
/// readiness: NOT_SERVING and 503 `INDEX-STALE` before it has caught up and whenever it falls
/// behind, SERVING and 200 while it is ready; screens are answered throughout. No NATS needed: the
/// readiness is driven by hand.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replica_takes_traffic_only_while_ready() {
    use vigie::config::{FetchPolicy, HttpConfig, ServerConfig, ServiceLimits};
    use vigie::hashing::HashingSetup;
    use vigie::matcher::LiveBanks;
    use vigie::service::server;
    use vigie::store::{RocksOptions, Store};

    let dir = tempfile::tempdir().expect("tmp");
    let store = Arc::new(Store::open(dir.path(), &RocksOptions::default()).expect("store"));
    let banks = Arc::new(LiveBanks::open(store.clone(), HashingSetup::default()).expect("banks"));
    let (ready, ready_rx) = tokio::sync::watch::channel(false);
    let replica = server::Replica {
        banks: banks.clone(),
        store: store.clone(),
        writer: banks.clone(),
        ready: ready_rx,
        metrics: Arc::new(|_: &mut String| {}),
    };
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        insecure_no_auth: true,
        tls: None,
        metrics_listen: None,
        limits: ServiceLimits::default(),
    };
    let running = server::start_replica(config, replica)
        .await
        .expect("server");
    let http = vigie::http::start(
        HttpConfig {
            listen: "127.0.0.1:0".parse().expect("addr"),
            insecure_no_auth: true,
            keyless_role: None,
            fetch: FetchPolicy::default(),
        },
        running.state.clone(),
        store.clone(),
    )
    .await
    .expect("http");
    let channel = Channel::from_shared(format!("http://{}", running.addr))
        .expect("uri")
        .connect_lazy();
    let port = http.addr.port();
    let mut screening = ScreeningClient::new(channel.clone());
    // Waits until health and both HTTP routes say `serving`, then checks that screens answer.
    let expect = |serving: bool| {
        let channel = channel.clone();
        async move {
            let until = Instant::now() + Duration::from_secs(10);
            let (want_health, want_code, want_body) = match serving {
                true => (ServingStatus::Serving as i32, 200, "\"I-AM-ALIVE\""),
                false => (ServingStatus::NotServing as i32, 503, "\"INDEX-STALE\""),
            };
            loop {
                let health = HealthClient::new(channel.clone())
                    .check(HealthCheckRequest {
                        service: String::new(),
                    })
                    .await
                    .map(|r| r.into_inner().status)
                    .ok();
                let status = http_get(port, "/status");
                let readyz = http_get(port, "/readyz").map(|(code, _)| code);
                if health == Some(want_health)
                    && status.as_ref().map(|(c, b)| (*c, b.as_str()))
                        == Some((want_code, want_body))
                    && readyz == Some(want_code)
                {
                    return;
                }
                assert!(
                    Instant::now() < until,
                    "serving {serving}: health {health:?}, /status {status:?}, /readyz {readyz:?}"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    let pdq = random_pdq(&mut 5);
    expect(false).await;
    assert_eq!(
        screen_matches(&mut screening, &pdq).await,
        Some(false),
        "a replica behind its stream still answers screens"
    );
    ready.send(true).expect("ready");
    expect(true).await;
    ready.send(false).expect("behind");
    expect(false).await;
    assert_eq!(screen_matches(&mut screening, &pdq).await, Some(false));
    ready.send(true).expect("ready again");
    expect(true).await;
    http.shutdown().await.expect("http stops");
    running.shutdown().await.expect("server stops");
}

/// A snapshot download whose reader cannot start is an error the joining replica retries, never a
/// panic: async-nats 0.50's object reader unwraps the result of creating its consumer (nats.rs
/// issue 1615), which failed once in seven runs of the test above while the object store's stream
/// was still electing a leader. Here the bucket's stream allows one consumer and the test holds
/// it, so every reader's consumer is refused at once; once it is let go, the same download goes
/// through (and the restore then fails on the object, which is not a snapshot).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_download_that_cannot_start_is_an_error_not_a_panic() {
    use async_nats::jetstream;
    use async_nats::jetstream::object_store::ObjectMetadata;
    use vigie::cluster::ClusterError;
    use vigie::cluster::snapshots::{self, OBJECT, SEQUENCE_KEY};

    let Some(binary) = find_nats_server() else {
        eprintln!(
            "SKIPPED: nats-server not found (run scripts/setup.sh, or set VIGIE_NATS_SERVER)"
        );
        return;
    };
    let root = tempfile::tempdir().expect("tmp");
    let nats = LocalNats::start(&binary, &root.path().join("nats"), 1, 1 << 20).expect("nats");
    let client = async_nats::connect(nats.urls()).await.expect("connect");
    let js = jetstream::new(client);
    // The bucket's stream as async-nats makes it, with room for one consumer.
    let bucket_name = snapshots::bucket_name("SNAP_TEST");
    let stream_name = format!("OBJ_{bucket_name}");
    let stream = js
        .create_stream(jetstream::stream::Config {
            name: stream_name.clone(),
            subjects: vec![
                format!("$O.{bucket_name}.C.>"),
                format!("$O.{bucket_name}.M.>"),
            ],
            discard: jetstream::stream::DiscardPolicy::New,
            allow_rollup: true,
            allow_direct: true,
            max_consumers: 1,
            ..Default::default()
        })
        .await
        .expect("stream");
    let bucket = snapshots::ensure_bucket(&js, "SNAP_TEST", 1)
        .await
        .expect("bucket");
    let mut metadata = std::collections::HashMap::new();
    metadata.insert(SEQUENCE_KEY.to_string(), "5".to_string());
    bucket
        .put(
            ObjectMetadata {
                name: OBJECT.to_string(),
                metadata,
                ..Default::default()
            },
            &mut &b"not a snapshot"[..],
        )
        .await
        .expect("put");
    assert_eq!(
        snapshots::newest_sequence(&bucket).await.expect("info"),
        Some(5)
    );
    stream
        .create_consumer(jetstream::consumer::pull::Config {
            durable_name: Some("held".into()),
            ..Default::default()
        })
        .await
        .expect("the one consumer");

    let data = root.path().join("data");
    let options = vigie::store::RocksOptions::default();
    let refused = snapshots::restore(&bucket, &data, &options).await;
    match refused {
        Err(ClusterError::Snapshot(message)) => {
            assert!(message.contains("downloading the snapshot"), "{message}")
        }
        other => panic!("expected a download error, got {other:?}"),
    }
    assert!(
        !data.exists(),
        "nothing is installed from a failed download"
    );

    stream.delete_consumer("held").await.expect("let go");
    match snapshots::restore(&bucket, &data, &options).await {
        Err(ClusterError::Snapshot(message)) => assert!(
            !message.contains("downloading the snapshot"),
            "the download itself now goes through: {message}"
        ),
        other => panic!("expected the restore to refuse a non-snapshot, got {other:?}"),
    }
    assert!(!data.exists());
}
