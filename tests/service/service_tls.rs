//! TLS with required client certificates, and server reflection (what `grpcurl` uses).
//! Certificates are made for the test with the `openssl` command; without it the TLS test skips.

use crate::common;

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use common::authorized_screen;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};
use vigie::service::ServiceLimits;
use vigie::service::proto::screening_client::ScreeningClient;
use vigie::service::server::{self, ServerConfig, TlsFiles};
use vigie::store::api_keys::{Role, generate_key};
use vigie::store::{RocksOptions, Store};

fn openssl(dir: &Path, args: &[&str]) -> bool {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// A CA, a server certificate for localhost/127.0.0.1 and a client certificate, signed by the CA.
fn make_certificates(dir: &Path) -> bool {
    let ec = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ok = openssl(
        dir,
        &[
            &["req", "-x509"],
            &ec[..],
            &[
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-days",
                "2",
                "-subj",
                "/CN=vigie test CA",
            ],
        ]
        .concat(),
    );
    for (name, usage) in [("server", "serverAuth"), ("client", "clientAuth")] {
        std::fs::write(
            dir.join(format!("{name}.ext")),
            format!("subjectAltName=DNS:localhost,IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage={usage}\n"),
        )
        .expect("ext file");
        ok =
            ok && openssl(
                dir,
                &[
                    &["req"],
                    &ec[..],
                    &[
                        "-keyout",
                        &format!("{name}.key"),
                        "-out",
                        &format!("{name}.csr"),
                        "-subj",
                        &format!("/CN={name}"),
                    ],
                ]
                .concat(),
            ) && openssl(
                dir,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &format!("{name}.csr"),
                    "-CA",
                    "ca.pem",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &format!("{name}.pem"),
                    "-days",
                    "2",
                    "-extfile",
                    &format!("{name}.ext"),
                ],
            );
    }
    ok
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_client_certificates_and_reflection() {
    let certs = tempfile::tempdir().expect("tmp");
    if !make_certificates(certs.path()) {
        eprintln!("SKIPPED: the openssl command is not available to make test certificates");
        return;
    }
    let data = tempfile::tempdir().expect("tmp");
    let store = Arc::new(Store::open(data.path(), &RocksOptions::default()).expect("store"));
    let key = generate_key();
    store
        .create_api_key("platform", Role::Screen, &key, "test")
        .expect("key");
    let config = ServerConfig {
        listen: "127.0.0.1:0".parse().expect("addr"),
        insecure_no_auth: false,
        tls: Some(TlsFiles {
            cert: certs.path().join("server.pem"),
            key: certs.path().join("server.key"),
            client_ca: Some(certs.path().join("ca.pem")),
        }),
        metrics_listen: None,
        limits: ServiceLimits::default(),
    };
    let mut running = server::start(config, store).await.expect("server");
    running.wait_ready().await;
    let read = |name: &str| std::fs::read(certs.path().join(name)).expect("cert file");
    let url = format!("https://localhost:{}", running.addr.port());

    // With a client certificate signed by the CA: the call goes through.
    let tls = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .identity(Identity::from_pem(read("client.pem"), read("client.key")))
        .domain_name("localhost");
    let channel = Channel::from_shared(url.clone())
        .expect("uri")
        .tls_config(tls)
        .expect("tls")
        .connect()
        .await
        .expect("connect with a client certificate");
    ScreeningClient::new(channel.clone())
        .screen(authorized_screen(&key))
        .await
        .expect("screen over TLS");

    // Reflection lists the services without the .proto files.
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;
    let ask = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut answers = ServerReflectionClient::new(channel)
        .server_reflection_info(tokio_stream::iter(vec![ask]))
        .await
        .expect("reflection")
        .into_inner();
    let answer = answers
        .message()
        .await
        .expect("answer")
        .expect("one answer");
    let Some(MessageResponse::ListServicesResponse(list)) = answer.message_response else {
        panic!("unexpected reflection answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    for expected in [
        "vigie.v1.Screening",
        "vigie.v1.Banks",
        "vigie.v1.Keys",
        "grpc.health.v1.Health",
    ] {
        assert!(
            names.iter().any(|n| n == expected),
            "{expected} missing from {names:?}"
        );
    }

    // Without a client certificate nothing gets through, even with a valid key: either the
    // handshake fails at connect, or (TLS 1.3 verifies the client after the handshake) the call does.
    let no_identity = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(read("ca.pem")))
        .domain_name("localhost");
    let refused = match Channel::from_shared(url)
        .expect("uri")
        .tls_config(no_identity)
        .expect("tls")
        .connect()
        .await
    {
        Err(_) => true,
        Ok(channel) => ScreeningClient::new(channel)
            .screen(authorized_screen(&key))
            .await
            .is_err(),
    };
    assert!(
        refused,
        "a client without a certificate must not get through"
    );
    running.shutdown().await.expect("shutdown");
}
