//! The `esker` admin CLI against an in-process broker: every subcommand by running the built
//! binary, its error cases (unknown topic, denied by ACL, wrong password, bad flag,
//! unreachable broker) and exit codes, SASL/SCRAM, TLS with a client certificate, and golden
//! tables and JSON in tests/cli_golden (volatile parts normalised; `UPDATE_GOLDEN=1`
//! rewrites them).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::TestBroker;
use rdkafka::consumer::{Consumer, StreamConsumer};

/// What a run of the binary gave.
#[derive(Debug)]
struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

/// Runs `esker <args>` with `stdin`, off the async runtime (the broker runs on it).
async fn esker(args: &[&str], stdin: &str) -> Out {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let stdin = stdin.to_string();
    tokio::task::spawn_blocking(move || {
        let mut child = Command::new(env!("CARGO_BIN_EXE_esker"))
            .args(&args)
            .env("RUST_LOG", "off")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run esker");
        child
            .stdin
            .take()
            .expect("stdin")
            .write_all(stdin.as_bytes())
            .expect("write stdin");
        let out = child.wait_with_output().expect("esker output");
        Out {
            code: out.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    })
    .await
    .expect("join")
}

/// Runs and expects exit code 0.
async fn ok(args: &[&str], stdin: &str) -> String {
    let out = esker(args, stdin).await;
    assert_eq!(out.code, 0, "esker {args:?} failed: {out:?}");
    out.stdout
}

/// Runs and expects `code`, returning stderr.
async fn fails(args: &[&str], code: i32) -> String {
    let out = esker(args, "").await;
    assert_eq!(out.code, code, "esker {args:?}: {out:?}");
    out.stderr
}

/// Replaces ports, UUIDs, cluster ids and times by placeholders.
fn normalise(text: &str, b: &TestBroker) -> String {
    let port = b
        .bootstrap()
        .rsplit_once(':')
        .map(|(_, p)| p.to_string())
        .unwrap_or_default();
    let mut t = text.replace(&port, "<PORT>");
    let uuid = regex::Regex::new(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
        .expect("regex");
    t = uuid.replace_all(&t, "<UUID>").into_owned();
    let time = regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z").expect("regex");
    t = time.replace_all(&t, "<TIME>").into_owned();
    let member = regex::Regex::new(r"rdkafka-[0-9a-f-]+|<UUID>").expect("regex");
    member.replace_all(&t, "<ID>").into_owned()
}

/// Compares with tests/cli_golden/`name` (or rewrites it with UPDATE_GOLDEN=1).
fn golden(name: &str, actual: &str) {
    let path: PathBuf = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/cli_golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&path, actual).expect("write golden file");
        return;
    }
    let expected = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("missing {} (run with UPDATE_GOLDEN=1)", path.display()));
    assert_eq!(
        actual,
        expected,
        "output differs from {} (UPDATE_GOLDEN=1 rewrites it)",
        path.display()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_configs_produce_and_consume() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    let b_ = ["-b", bs.as_str()];
    let with = |args: &[&'static str]| -> Vec<String> {
        args.iter()
            .map(|s| s.to_string())
            .chain(b_.iter().map(|s| s.to_string()))
            .collect()
    };
    let run = |v: Vec<String>| async move {
        let refs: Vec<&str> = v.iter().map(String::as_str).collect();
        ok(&refs, "").await
    };

    let out = run(with(&[
        "topic",
        "create",
        "orders",
        "-p",
        "3",
        "--config",
        "retention.ms=3600000",
    ]))
    .await;
    golden("topic_create.txt", &out);
    run(with(&["topic", "create", "audit", "--partitions", "1"])).await;
    let e = fails(
        &with(&["topic", "create", "orders"])
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
        1,
    )
    .await;
    assert!(
        e.contains("topic 'orders' already exists (TOPIC_ALREADY_EXISTS)"),
        "{e}"
    );
    golden("topic_list.txt", &run(with(&["topic", "list"])).await);
    golden(
        "topic_list.json",
        &run(with(&["topic", "list", "--json"])).await,
    );
    let all = run(with(&["topic", "list", "--internal"])).await;
    assert!(all.contains("orders"), "{all}");

    // Produce: keyed lines (Kafka's murmur2 partitioner), a header, a fixed partition.
    let out = ok(
        &[
            "produce",
            "orders",
            "-K",
            ":",
            "-H",
            "source=cli",
            "-b",
            &bs,
        ],
        "k1:first\nk2:second\nk1:third\n",
    )
    .await;
    assert_eq!(out, "produced 3 record(s) to topic 'orders'\n");
    ok(
        &[
            "produce", "orders", "-p", "2", "--value", "fourth", "-b", &bs,
        ],
        "",
    )
    .await;
    golden(
        "topic_describe.txt",
        &normalise(&run(with(&["topic", "describe", "orders"])).await, &b),
    );
    golden(
        "topic_describe.json",
        &normalise(
            &run(with(&["topic", "describe", "orders", "--json"])).await,
            &b,
        ),
    );

    // Consume one partition in every format; -c stops early.
    let kv = run(with(&["consume", "orders", "-p", "2", "-f", "kv"])).await;
    let json = run(with(&["consume", "orders", "-p", "2", "--json"])).await;
    golden("consume_kv.txt", &kv);
    golden("consume.json", &normalise(&json, &b));
    for line in json.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("one JSON object per line");
        assert_eq!(v["topic"], "orders");
    }
    let all = run(with(&["consume", "orders"])).await;
    let mut values: Vec<&str> = all.lines().collect();
    values.sort();
    assert_eq!(values, vec!["first", "fourth", "second", "third"]);
    assert_eq!(
        run(with(&["consume", "orders", "-c", "1"]))
            .await
            .lines()
            .count(),
        1
    );
    let hex = run(with(&[
        "consume", "orders", "-p", "2", "-o", "end", "-f", "hex",
    ]))
    .await;
    assert_eq!(hex, "", "nothing after the end");
    let later = run(with(&[
        "consume",
        "orders",
        "--from-time",
        "2999-01-01T00:00:00Z",
    ]))
    .await;
    assert_eq!(later, "");
    let early = run(with(&[
        "consume",
        "orders",
        "--from-time",
        "2000-01-01T00:00:00Z",
    ]))
    .await;
    assert_eq!(early.lines().count(), 4);

    // Configs: topic and broker (IncrementalAlterConfigs).
    golden(
        "topic_alter_config.txt",
        &run(with(&[
            "topic",
            "alter-config",
            "orders",
            "--set",
            "cleanup.policy=compact",
            "--delete",
            "retention.ms",
        ]))
        .await,
    );
    golden(
        "config_get_topic.txt",
        &run(with(&["config", "get", "--topic", "orders"])).await,
    );
    run(with(&[
        "config",
        "set",
        "--broker",
        "0",
        "--set",
        "log.cleaner.threads=2",
    ]))
    .await;
    run(with(&[
        "config",
        "set",
        "--broker-defaults",
        "--set",
        "message.max.bytes=2000000",
    ]))
    .await;
    golden(
        "config_get_broker.txt",
        &run(with(&["config", "get", "--broker", "0"])).await,
    );
    golden(
        "config_get_broker.json",
        &run(with(&["config", "get", "--broker", "0", "--json"])).await,
    );
    let all = run(with(&["config", "get", "--topic", "orders", "--all"])).await;
    assert!(all.contains("DEFAULT_CONFIG"), "{all}");
    let e = fails(
        &[
            "config",
            "set",
            "--topic",
            "orders",
            "--set",
            "no.such.key=1",
            "-b",
            &bs,
        ],
        1,
    )
    .await;
    assert!(e.contains("INVALID_CONFIG"), "{e}");

    // Errors: unknown topic, bad flags, unreachable broker.
    let e = fails(&["topic", "describe", "nope", "-b", &bs], 1).await;
    golden("error_unknown_topic.txt", &e);
    let e = fails(&["produce", "nope", "--value", "x", "-b", &bs], 1).await;
    assert!(
        e.contains("topic 'nope' does not exist (UNKNOWN_TOPIC_OR_PARTITION)"),
        "{e}"
    );
    let e = fails(&["topic", "list", "--no-such-flag", "-b", &bs], 2).await;
    assert!(e.contains("--no-such-flag"), "{e}");
    fails(&["config", "get", "-b", &bs], 2).await;
    fails(
        &[
            "topic",
            "list",
            "-X",
            "security.protocol=CARRIER_PIGEON",
            "-b",
            &bs,
        ],
        2,
    )
    .await;
    let e = fails(&["topic", "list", "-b", "127.0.0.1:1"], 3).await;
    assert!(e.contains("cannot connect to 127.0.0.1:1"), "{e}");

    // Delete: gone from the list; deleting again names the topic.
    assert_eq!(
        run(with(&["topic", "delete", "audit"])).await,
        "deleted topic 'audit'\n"
    );
    assert!(!run(with(&["topic", "list"])).await.contains("audit"));
    let e = fails(&["topic", "delete", "audit", "-b", &bs], 1).await;
    assert!(e.contains("topic 'audit' does not exist"), "{e}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn groups_lag_reset_and_delete() {
    let b = TestBroker::start().await;
    let bs = b.bootstrap();
    b.create_topic("events", 1).await;
    let lines: String = (0..10).map(|i| format!("e{i}\n")).collect();
    ok(&["produce", "events", "-b", &bs], &lines).await;

    // A simple consumer under group "app" reads 4 records and commits offset 4.
    let got = ok(
        &["consume", "events", "-g", "app", "-c", "4", "-b", &bs],
        "",
    )
    .await;
    assert_eq!(got, "e0\ne1\ne2\ne3\n");
    golden(
        "group_describe.txt",
        &ok(&["group", "describe", "app", "-b", &bs], "").await,
    );
    golden(
        "group_describe.json",
        &ok(&["group", "describe", "app", "--json", "-b", &bs], "").await,
    );
    // The next run continues where the group stopped.
    let got = ok(
        &["consume", "events", "-g", "app", "-c", "2", "-b", &bs],
        "",
    )
    .await;
    assert_eq!(got, "e4\ne5\n");

    // Reset: a dry run changes nothing; --execute applies.
    let plan = esker(
        &[
            "group",
            "reset-offsets",
            "app",
            "--topic",
            "events",
            "--to-earliest",
            "-b",
            &bs,
        ],
        "",
    )
    .await;
    assert_eq!(plan.code, 0, "{plan:?}");
    golden("group_reset_dry_run.txt", &plan.stdout);
    assert!(plan.stderr.contains("dry run"), "{plan:?}");
    let desc = ok(&["group", "describe", "app", "--json", "-b", &bs], "").await;
    let v: serde_json::Value = serde_json::from_str(&desc).expect("json");
    assert_eq!(v["offsets"][0]["current_offset"], 6);
    ok(
        &[
            "group",
            "reset-offsets",
            "app",
            "--topic",
            "events",
            "--to-earliest",
            "--execute",
            "-b",
            &bs,
        ],
        "",
    )
    .await;
    let lag = |s: &str| -> i64 {
        let v: serde_json::Value = serde_json::from_str(s).expect("json");
        v["offsets"][0]["lag"].as_i64().expect("lag")
    };
    assert_eq!(
        lag(&ok(&["group", "describe", "app", "--json", "-b", &bs], "").await),
        10
    );
    ok(
        &[
            "group",
            "reset-offsets",
            "app",
            "--all-topics",
            "--shift-by",
            "3",
            "--execute",
            "-b",
            &bs,
        ],
        "",
    )
    .await;
    assert_eq!(
        lag(&ok(&["group", "describe", "app", "--json", "-b", &bs], "").await),
        7
    );
    ok(
        &[
            "group",
            "reset-offsets",
            "app",
            "--topic",
            "events:0",
            "--shift-by",
            "100",
            "--execute",
            "-b",
            &bs,
        ],
        "",
    )
    .await;
    assert_eq!(
        lag(&ok(&["group", "describe", "app", "--json", "-b", &bs], "").await),
        0,
        "clamped to the log end"
    );
    ok(
        &[
            "group",
            "reset-offsets",
            "app",
            "--topic",
            "events",
            "--to-datetime",
            "2000-01-01T00:00:00Z",
            "--execute",
            "-b",
            &bs,
        ],
        "",
    )
    .await;
    assert_eq!(
        lag(&ok(&["group", "describe", "app", "--json", "-b", &bs], "").await),
        10
    );
    let e = fails(
        &[
            "group",
            "reset-offsets",
            "app",
            "--topic",
            "events:7",
            "--to-latest",
            "-b",
            &bs,
        ],
        1,
    )
    .await;
    assert!(
        e.contains("partition 7 of topic 'events' does not exist"),
        "{e}"
    );
    fails(
        &[
            "group",
            "reset-offsets",
            "app",
            "--topic",
            "events",
            "--to-latest",
            "--to-earliest",
            "-b",
            &bs,
        ],
        2,
    )
    .await;

    // A live rdkafka member: describe shows it with its assignment; a reset is refused.
    let consumer: StreamConsumer = common::consumer_config(&bs)
        .set("group.id", "live")
        .create()
        .expect("consumer");
    consumer.subscribe(&["events"]).expect("subscribe");
    let poller = tokio::spawn(async move {
        loop {
            let _ = tokio::time::timeout(Duration::from_millis(200), consumer.recv()).await;
        }
    });
    let stable = common::eventually_async(
        "group live Stable with events:0",
        common::TIMEOUT,
        || async {
            // Until the consumer joins, the group does not exist (exit 1).
            let out = esker(&["group", "describe", "live", "-b", &bs], "").await;
            if out.stdout.contains("State: Stable") && out.stdout.contains("events:0") {
                Ok(out.stdout)
            } else {
                Err(out)
            }
        },
    )
    .await;
    golden("group_describe_live.txt", &normalise(&stable, &b));
    let list = ok(&["group", "list", "-b", &bs], "").await;
    golden("group_list.txt", &list);
    let e = fails(
        &[
            "group",
            "reset-offsets",
            "live",
            "--topic",
            "events",
            "--to-earliest",
            "--execute",
            "-b",
            &bs,
        ],
        1,
    )
    .await;
    assert!(e.contains("group 'live' is Stable with 1 member(s)"), "{e}");
    let e = fails(&["group", "delete", "live", "-b", &bs], 1).await;
    assert!(e.contains("NON_EMPTY_GROUP"), "{e}");
    poller.abort();

    assert_eq!(
        ok(&["group", "delete", "app", "-b", &bs], "").await,
        "deleted group 'app'\n"
    );
    let e = fails(&["group", "describe", "app", "-b", &bs], 1).await;
    assert!(
        e.contains("group 'app' does not exist (GROUP_ID_NOT_FOUND)"),
        "{e}"
    );
    b.stop().await;
}

const SASL: [&str; 6] = [
    "-X",
    "security.protocol=SASL_PLAINTEXT",
    "-X",
    "sasl.mechanism=PLAIN",
    "-X",
    "sasl.username=admin",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acls_users_and_authentication() {
    let b = TestBroker::start_with(&[
        ("listeners", "SASL_PLAINTEXT://127.0.0.1:0"),
        ("sasl.plain.users", "admin:admin-secret"),
        ("authorizer.class.name", "StandardAuthorizer"),
        ("super.users", "User:admin"),
    ])
    .await;
    let bs = b.bootstrap();
    let admin = |args: &[&str]| -> Vec<String> {
        args.iter()
            .copied()
            .chain(SASL)
            .chain(["-X", "sasl.password=admin-secret", "-b", bs.as_str()])
            .map(str::to_string)
            .collect()
    };
    let alice = |mech: &str, pass: &str, args: &[&str]| -> Vec<String> {
        let mut v: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        for x in [
            "security.protocol=SASL_PLAINTEXT".to_string(),
            format!("sasl.mechanism={mech}"),
            "sasl.username=alice".to_string(),
            format!("sasl.password={pass}"),
        ] {
            v.push("-X".into());
            v.push(x);
        }
        v.push("-b".into());
        v.push(bs.clone());
        v
    };
    let refs = |v: &[String]| -> Vec<String> { v.to_vec() };
    macro_rules! run {
        ($v:expr) => {{
            let v: Vec<String> = refs(&$v);
            let r: Vec<&str> = v.iter().map(String::as_str).collect();
            ok(&r, "").await
        }};
    }
    macro_rules! fail {
        ($v:expr, $code:expr) => {{
            let v: Vec<String> = refs(&$v);
            let r: Vec<&str> = v.iter().map(String::as_str).collect();
            fails(&r, $code).await
        }};
    }

    // SCRAM users: set (both mechanisms), list.
    let out = run!(admin(&[
        "user",
        "set-password",
        "alice",
        "--password",
        "alice-pw"
    ]));
    assert_eq!(
        out,
        "set the password of user 'alice' (SCRAM-SHA-256, 4096 iterations)\n"
    );
    // The password can come from stdin.
    let v = admin(&[
        "user",
        "set-password",
        "alice",
        "--mechanism",
        "SCRAM-SHA-512",
        "--iterations",
        "8192",
    ]);
    let r: Vec<&str> = v.iter().map(String::as_str).collect();
    ok(&r, "alice-pw\n").await;
    golden("user_list.txt", &run!(admin(&["user", "list"])));
    run!(admin(&["topic", "create", "secret", "-p", "1"]));
    run!(admin(&["produce", "secret", "--value", "hush"]));

    // Alice authenticates with SCRAM but may do nothing yet.
    let e = fail!(
        alice(
            "SCRAM-SHA-256",
            "alice-pw",
            &["topic", "describe", "secret"]
        ),
        1
    );
    golden("error_denied.txt", &e);
    assert_eq!(
        run!(alice("SCRAM-SHA-512", "alice-pw", &["topic", "list"])),
        "TOPIC  PARTITIONS  REPLICATION-FACTOR\n"
    );
    let e = fail!(alice("SCRAM-SHA-256", "wrong", &["topic", "list"]), 3);
    assert!(
        e.contains("authentication failed for user 'alice'")
            && e.contains("SASL_AUTHENTICATION_FAILED"),
        "{e}"
    );
    let mut wrong = admin(&["topic", "list"]);
    wrong.extend(["-X".to_string(), "sasl.password=nope".to_string()]);
    let e = fail!(wrong, 3);
    assert!(e.contains("SASL_AUTHENTICATION_FAILED"), "{e}");
    let e = fail!(alice("SCRAM-SHA-256", "alice-pw", &["acl", "list"]), 1);
    assert!(e.contains("CLUSTER_AUTHORIZATION_FAILED"), "{e}");
    let e = fail!(
        alice(
            "SCRAM-SHA-256",
            "alice-pw",
            &["user", "set-password", "bob", "--password", "x"]
        ),
        1
    );
    assert!(e.contains("CLUSTER_AUTHORIZATION_FAILED"), "{e}");

    // ACLs: add, list (table and JSON), then alice can read but not write.
    golden(
        "acl_add.txt",
        &run!(admin(&[
            "acl",
            "add",
            "--principal",
            "User:alice",
            "--operation",
            "read",
            "--operation",
            "Describe",
            "--topic",
            "secret"
        ])),
    );
    run!(admin(&[
        "acl",
        "add",
        "--principal",
        "User:alice",
        "--operation",
        "READ",
        "--group",
        "app-",
        "--pattern",
        "prefixed"
    ]));
    run!(admin(&[
        "acl",
        "add",
        "--principal",
        "User:alice",
        "--operation",
        "WRITE",
        "--permission",
        "deny",
        "--topic",
        "secret"
    ]));
    golden("acl_list.txt", &run!(admin(&["acl", "list"])));
    golden(
        "acl_list.json",
        &run!(admin(&["acl", "list", "--json", "--topic", "secret"])),
    );
    let got = run!(alice(
        "SCRAM-SHA-256",
        "alice-pw",
        &["consume", "secret", "-g", "app-1"]
    ));
    assert_eq!(got, "hush\n");
    let e = fail!(
        alice(
            "SCRAM-SHA-256",
            "alice-pw",
            &["produce", "secret", "--value", "x"]
        ),
        1
    );
    assert!(
        e.contains("not authorized to WRITE topic 'secret' (TOPIC_AUTHORIZATION_FAILED)"),
        "{e}"
    );
    let e = fail!(
        alice(
            "SCRAM-SHA-256",
            "alice-pw",
            &["consume", "secret", "-g", "other"]
        ),
        1
    );
    assert!(e.contains("GROUP_AUTHORIZATION_FAILED"), "{e}");

    // The same login from a Java-style client.properties file.
    let dir = tempfile::tempdir().expect("tempdir");
    let props = dir.path().join("client.properties");
    std::fs::write(
        &props,
        format!(
            "bootstrap.servers={bs}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-512\n\
             sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  username=\"alice\" password=\"alice-pw\";\n"
        ),
    )
    .expect("write");
    let p = props.display().to_string();
    assert_eq!(ok(&["consume", "secret", "-F", &p], "").await, "hush\n");

    // Remove: what matched is printed; no match is not an error.
    let out = run!(admin(&[
        "acl",
        "remove",
        "--topic",
        "secret",
        "--principal",
        "User:alice",
        "--operation",
        "WRITE"
    ]));
    assert!(out.starts_with("removed 1 ACL(s):"), "{out}");
    assert_eq!(
        run!(admin(&["acl", "remove", "--topic", "nothing"])),
        "no ACL matched\n"
    );
    fail!(admin(&["acl", "remove"]), 2);
    fail!(
        admin(&[
            "acl",
            "add",
            "--topic",
            "x",
            "--operation",
            "FLY",
            "--principal",
            "User:a"
        ]),
        2
    );

    // Users: delete one mechanism, then the rest; unknown users are named.
    run!(admin(&[
        "user",
        "delete",
        "alice",
        "--mechanism",
        "SCRAM-SHA-512"
    ]));
    golden("user_list.json", &run!(admin(&["user", "list", "--json"])));
    run!(admin(&["user", "delete", "alice"]));
    let e = fail!(alice("SCRAM-SHA-256", "alice-pw", &["topic", "list"]), 3);
    assert!(e.contains("SASL_AUTHENTICATION_FAILED"), "{e}");
    let e = fail!(admin(&["user", "delete", "bob"]), 1);
    assert!(e.contains("user 'bob' has no SCRAM credentials"), "{e}");
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_info_perf_and_tls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path().display().to_string();
    ok(&["certs", "--out", &d, "--client", "alice"], "").await;
    let f = |n: &str| dir.path().join(n).display().to_string();
    let (cert, key, ca) = (f("server.pem"), f("server.key"), f("ca.pem"));
    let b = TestBroker::start_with(&[
        ("listeners", "SSL://127.0.0.1:0"),
        ("ssl.certificate.location", &cert),
        ("ssl.key.location", &key),
        ("ssl.ca.location", &ca),
        ("ssl.client.auth", "required"),
    ])
    .await;
    let bs = b.bootstrap();
    let (ca_x, cert_x, key_x) = (
        format!("ssl.ca.location={ca}"),
        format!("ssl.certificate.location={}", f("alice.pem")),
        format!("ssl.key.location={}", f("alice.key")),
    );
    let tls = |args: &[&str]| -> Vec<String> {
        args.iter()
            .copied()
            .chain([
                "-X",
                "security.protocol=SSL",
                "-X",
                ca_x.as_str(),
                "-X",
                cert_x.as_str(),
                "-X",
                key_x.as_str(),
                "-b",
                bs.as_str(),
            ])
            .map(str::to_string)
            .collect()
    };
    let run = |v: Vec<String>| async move {
        let r: Vec<&str> = v.iter().map(String::as_str).collect();
        ok(&r, "").await
    };

    let info = run(tls(&["cluster", "info"])).await;
    let cid = b.context().cluster_id.clone();
    // The number of APIs grows with the broker: not part of the golden text.
    let apis = regex::Regex::new(r"API keys: +\d+").expect("regex");
    let info = apis.replace(&info, "API keys:    <N>").into_owned();
    golden(
        "cluster_info.txt",
        &normalise(&info.replace(&cid, "<CLUSTER>"), &b),
    );
    let json = run(tls(&["cluster", "info", "--json"])).await;
    let v: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(v["cluster_id"], cid.as_str());
    assert_eq!(v["listener"], "SSL");
    assert_eq!(v["brokers"][0]["id"], 0);

    // perf: the produce and consume lines, and the JSON fields scripts read.
    run(tls(&["topic", "create", "bench", "-p", "2"])).await;
    let out = run(tls(&[
        "perf",
        "bench",
        "--num-records",
        "5000",
        "--record-size",
        "64",
        "--batch-records",
        "500",
    ]))
    .await;
    assert!(
        out.contains("produce: 5000 records sent") && out.contains("ms 99th"),
        "{out}"
    );
    assert!(out.contains("consume: 5000 records read"), "{out}");
    let out = run(tls(&[
        "perf",
        "bench",
        "--num-records",
        "1000",
        "--mode",
        "produce",
        "--json",
    ]))
    .await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["produce"]["records"], 1000);
    assert!(v["produce"]["records_per_sec"].as_f64().expect("rate") > 0.0);
    assert!(v["produce"]["p99_ms"].as_f64().is_some());
    assert!(v["consume"].is_null());
    let out = run(tls(&["perf", "bench", "--mode", "consume", "--json"])).await;
    let v: serde_json::Value = serde_json::from_str(&out).expect("json");
    assert_eq!(v["consume"]["records"], 6000);

    // Without a client certificate, or without TLS, the connection fails: exit 3.
    let v = vec![
        "topic",
        "list",
        "-X",
        "security.protocol=SSL",
        "-X",
        ca_x.as_str(),
        "-b",
        bs.as_str(),
    ];
    let e = fails(&v, 3).await;
    assert!(e.contains("error:"), "{e}");
    let e = fails(
        &["topic", "list", "-b", &bs, "-X", "request.timeout.ms=3000"],
        3,
    )
    .await;
    assert!(e.contains("answered with TLS"), "{e}");
    // TLS without a CA file is a usage error.
    fails(
        &["topic", "list", "-X", "security.protocol=SSL", "-b", &bs],
        2,
    )
    .await;

    b.stop().await;
}
