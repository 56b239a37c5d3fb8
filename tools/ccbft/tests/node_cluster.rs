//! Real clusters: `ccbft node` processes on 127.0.0.1 (TLS links, each with its own
//! write-ahead log on disk), driven by `ccbft submit` processes with signed transfers.
//! Replicas are killed with SIGKILL and restarted from their logs; they must catch up to the
//! same state roots as the others, and a resubmission of the same keys must move nothing.
//!
//! What is asserted is behaviour, never timing: every transfer answered, none run twice,
//! every height that two replicas executed has one state root, restarted replicas catch up.

mod cluster;

use cluster::*;

#[test]
fn a_cluster_executes_signed_transfers_and_a_killed_replica_rejoins_from_its_log() {
    let mut cluster = Cluster::running(&ONE_DOMAIN);

    let first = cluster.submit_ok(&["--count", "200", "--first-key", "1000"]);
    assert_eq!(field(&first, "applied"), 200, "{first:?}");
    assert_eq!(field(&first, "answered"), 200, "{first:?}");

    // Replica 3 is never the one `submit` connects to first (replica 0 is), so the cluster
    // keeps answering with three of four while it is down.
    cluster.kill(3);
    let while_down = cluster.submit_ok(&["--count", "100", "--first-key", "2000"]);
    assert_eq!(field(&while_down, "applied"), 100, "{while_down:?}");

    cluster.start(3);
    let after = cluster.submit_ok(&["--count", "50", "--first-key", "3000"]);
    assert_eq!(field(&after, "applied"), 50, "{after:?}");
    cluster.await_height(field(&after, "height"));
    cluster.assert_one_root_per_height();
    let restored = cluster.local.current_log(3);
    assert!(
        restored.contains("restored from") && !restored.contains("records=0 "),
        "replica 3 restarted from an empty log:\n{restored}"
    );

    // SIGTERM: replica 2 makes its log durable, says so and exits 0; restarted, it has
    // every record it had.
    let status = cluster.local.terminate(2, PATIENCE).unwrap();
    assert!(status.success(), "{status:?}");
    let stopped = cluster.local.current_log(2);
    let durable = stopped
        .lines()
        .find_map(|l| l.split("stopped: log durable up to record ").nth(1))
        .and_then(|rest| rest.split(',').next()?.parse::<u64>().ok())
        .unwrap_or_else(|| panic!("no stop line:\n{stopped}"));
    cluster.start(2);
    let restored = cluster
        .local
        .await_line(2, "restored from", PATIENCE)
        .unwrap();
    assert!(
        restored.contains(&format!("records={durable} ")),
        "stopped with {durable} records durable, restored: {restored}"
    );

    // The same keys again: answered, nothing moves twice.
    let replay = cluster.submit_ok(&["--count", "200", "--first-key", "1000"]);
    assert_eq!(field(&replay, "duplicate"), 200, "{replay:?}");
    assert_eq!(field(&replay, "applied"), 0, "{replay:?}");
    cluster.assert_one_root_per_height();
}

#[test]
fn bad_submissions_are_refused_with_a_reason() {
    let cluster = Cluster::files(&ONE_DOMAIN);
    // Client 7 is not in the genesis: no key file, an error that names it.
    let out = cluster.submit(&["--client", "7", "--count", "1"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("client-7.key"),
        "{}",
        text(&out.stderr)
    );
    // A window of 0 is refused by the parser.
    let out = cluster.submit(&["--window", "0"]);
    assert_eq!(out.status.code(), Some(2), "{}", text(&out.stderr));
}

#[test]
fn a_node_refuses_bad_start_up_input() {
    let cluster = Cluster::files(&ONE_DOMAIN);
    let data = cluster.dir.path().join("data-9");
    let out = cluster.node(&["--id", "9", "--data", data.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("replica 9 is not in"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn three_clouds_keep_committing_when_the_global_leader_and_then_a_shard_primary_are_killed() {
    let mut cluster = Cluster::running(&THREE_CLOUDS);
    // Client 0's payments enter at the first replica of its account's home domain.
    let home = ccbft_core::client::home_domain(0, 3) as usize;
    let load = cluster.spawn_submit(&["--count", "400", "--window", "16", "--first-key", "1"]);
    cluster.await_replica_height(6, 5);
    let leader = cluster
        .local
        .last_named(6, "global leader")
        .expect("replica 6 logged a leader");
    // Progress is watched on a replica that is killed neither as leader nor as primary.
    let home_members = cluster.layout.members(home);
    let observer = (0..cluster.replicas())
        .rev()
        .find(|id| *id != leader && !home_members.contains(id))
        .expect("a replica outside the home domain");
    cluster.kill(leader);
    let height = cluster.height(observer);
    cluster.await_replica_height(observer, height + 10);
    cluster.start(leader);

    // Ask a home-domain member that was not just restarted (its log is the older one).
    let member = *home_members
        .iter()
        .find(|&&id| id != leader)
        .expect("the home domain has two members");
    let primary = cluster
        .local
        .last_named(member, &format!("lane {home}/0 primary"))
        .expect("every replica logs its lanes' primaries");
    cluster.kill(primary);
    let height = cluster.height(observer);
    cluster.await_replica_height(observer, height + 10);
    cluster.start(primary);

    let report = finish(&cluster, load);
    eprintln!("killed leader r{leader}, then primary r{primary}: {report:?}");
    // The observer's control plane saw it: ready, the leader's round timed out, and (below)
    // its executed height is exported.
    let (status, _) = cluster.local.control_get(observer, "/health").unwrap();
    assert_eq!(status, 200);
    let (_, events) = cluster.local.control_get(observer, "/events").unwrap();
    assert!(events.contains("\"kind\":\"GlobalTimeout\""), "{events}");
    // Every payment answered globally final exactly once: resent ones (after a failover) are
    // answered `duplicate`, which is the ledger refusing to run them a second time.
    assert_eq!(field(&report, "answered"), 400, "{report:?}");
    assert_eq!(
        field(&report, "applied") + field(&report, "duplicate"),
        400,
        "{report:?}"
    );
    assert_eq!(field(&report, "refused"), 0, "{report:?}");
    cluster.await_height(field(&report, "height"));
    cluster.assert_one_root_per_height();
    // The receipts' height can be ahead of the observer when the load ends; once its log
    // shows that height, so does its gauge (set before the line is written).
    let exported = cluster.metric(observer, "ccbft_executed_height");
    assert!(exported >= field(&report, "height"));
}

/// `POST path` on replica `id`'s admin API, which must answer 200.
fn admin(cluster: &Cluster, id: u32, path: &str) {
    let (status, body) = cluster.local.admin_post(id, path).unwrap();
    assert_eq!(status, 200, "r{id} {path}: {body}");
}

fn id_list(ids: &[u32]) -> String {
    ids.iter().map(u32::to_string).collect::<Vec<_>>().join(",")
}

#[test]
fn a_domain_cut_off_by_the_shaper_answers_locally_and_catches_up_after_healing() {
    let mut cluster = Cluster::files_with_clients(&THREE_CLOUDS, 6);
    // A client whose payments a two-replica domain orders: cut off, the other five are
    // still a global quorum (q = 5 of 7).
    let genesis = ccbft_node::genesis::load(&cluster.local.keys_dir()).unwrap();
    let home = |client: u32| {
        let debited = genesis.clients.accounts_of(client).next().unwrap();
        ccbft_core::client::home_domain(debited, 3) as usize
    };
    let client = (0..6)
        .find(|&c| home(c) > 0)
        .expect("one of six clients is homed outside the three-replica domain");
    let domain = home(client);
    let elsewhere = (0..6)
        .find(|&c| home(c) != domain)
        .expect("one of six clients is homed in another domain");
    cluster.local.start_all().unwrap();
    let client = client.to_string();
    let warm = cluster.submit_ok(&["--client", &client, "--count", "20", "--first-key", "1"]);
    assert_eq!(field(&warm, "applied"), 20, "{warm:?}");

    let cut_off = cluster.layout.members(domain);
    let rest: Vec<u32> = (0..cluster.replicas())
        .filter(|id| !cut_off.contains(id))
        .collect();
    for &id in &cut_off {
        admin(
            &cluster,
            id,
            &format!("/admin/cut?peers={}", id_list(&rest)),
        );
    }
    for &id in &rest {
        admin(
            &cluster,
            id,
            &format!("/admin/cut?peers={}", id_list(&cut_off)),
        );
    }
    // Cut off, the domain's local tier still commits its own payments: locally final.
    let local = cluster.submit_ok(&[
        "--client",
        &client,
        "--count",
        "50",
        "--first-key",
        "100",
        "--wait",
        "local",
    ]);
    assert_eq!(field(&local, "locally_final"), 50, "{local:?}");
    assert_eq!(field(&local, "refused"), 0, "{local:?}");
    // And the global tier goes on without it: other domains' payments become globally final.
    let elsewhere = elsewhere.to_string();
    let others = cluster.submit_ok(&[
        "--client",
        &elsewhere,
        "--count",
        "30",
        "--first-key",
        "200",
    ]);
    assert_eq!(field(&others, "applied"), 30, "{others:?}");
    let observer = *rest.last().unwrap();
    let stalled = cut_off.iter().map(|&id| cluster.height(id)).max().unwrap();
    assert!(
        stalled < field(&others, "height"),
        "the cut-off domain executed as far as the others: was it cut?"
    );

    for id in 0..cluster.replicas() {
        admin(&cluster, id, "/admin/heal");
    }
    // Healed: the locally final payments become globally final, each once (resubmitted
    // under the same keys, they are answered when executed, or `duplicate` if they were).
    let global = cluster.submit_ok(&["--client", &client, "--count", "50", "--first-key", "100"]);
    assert_eq!(field(&global, "answered"), 50, "{global:?}");
    assert_eq!(
        field(&global, "applied") + field(&global, "duplicate"),
        50,
        "{global:?}"
    );
    let height = cluster.height(observer);
    cluster.await_height(height);
    cluster.assert_one_root_per_height();
}

/// The newest segment file of replica `id`'s log.
/// Replica `id`'s log segments, oldest first.
fn segments(cluster: &Cluster, id: u32) -> Vec<std::path::PathBuf> {
    let wal = cluster.local.data_dir(id).join("wal");
    let mut segments: Vec<_> = std::fs::read_dir(&wal)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "seg"))
        .collect();
    segments.sort();
    segments
}

fn last_segment(cluster: &Cluster, id: u32) -> std::path::PathBuf {
    segments(cluster, id).pop().expect("a segment")
}

#[test]
fn a_replica_whose_committed_records_are_damaged_says_so_and_rejoins_by_state_transfer() {
    let mut cluster = Cluster::running(&ONE_DOMAIN);
    let first = cluster.submit_ok(&["--count", "200", "--window", "2", "--first-key", "1"]);
    cluster.await_height(field(&first, "height"));
    cluster.kill(2);
    // Flipped bytes halfway through the records of its first segment, acknowledged records
    // after them, so this is damage, not a torn tail. Groups are padded to 4 KiB blocks (the
    // padding carries nothing), so the flips go where a block starts: always group data.
    let segment = segments(&cluster, 2).remove(0);
    let mut bytes = std::fs::read(&segment).unwrap();
    let written = bytes.iter().rposition(|&b| b != 0).expect("records");
    let middle = written / 2 / 4096 * 4096;
    for block in 0..4 {
        bytes[middle + block * 4096] ^= 0x40;
    }
    std::fs::write(&segment, bytes).unwrap();
    cluster.start(2);
    let said = cluster
        .local
        .await_line(2, "rejoins by state transfer", PATIENCE)
        .unwrap();
    assert!(said.contains("log corrupted"), "{said}");
    let quarantine = cluster.local.data_dir(2).join("quarantine");
    let kept: Vec<_> = std::fs::read_dir(&quarantine).unwrap().collect();
    assert_eq!(kept.len(), 1, "the damaged log is kept for the operator");
    // With replica 3 down, a quorum (3 of 4) needs replica 2's votes again, once it is
    // past what it may have signed before.
    cluster.await_rejoined(2, 10_000);
    cluster.commits_without(3, 5_000);
    let replay = cluster.submit_ok(&["--count", "200", "--first-key", "1"]);
    assert_eq!(field(&replay, "duplicate"), 200, "{replay:?}");
}

#[test]
fn a_torn_log_tail_is_cut_and_a_replica_with_a_lost_disk_catches_up_and_votes_again() {
    let mut cluster = Cluster::running(&ONE_DOMAIN);
    let first = cluster.submit_ok(&["--count", "100", "--first-key", "1"]);
    assert_eq!(field(&first, "applied"), 100, "{first:?}");

    // Replica 2 dies while a group is being written: bytes past its durable watermark that
    // were never acknowledged (appended by hand here: SIGKILL keeps every completed write).
    cluster.kill(2);
    let segment = last_segment(&cluster, 2);
    let mut torn = std::fs::read(&segment).unwrap();
    torn.extend(std::iter::repeat_n(0xa5, 1500));
    std::fs::write(&segment, torn).unwrap();
    cluster.start(2);

    // Replica 1's machine is replaced: its data directory is gone.
    cluster.kill(1);
    std::fs::remove_dir_all(cluster.local.data_dir(1)).unwrap();
    cluster.start(1);

    let second = cluster.submit_ok(&["--count", "100", "--first-key", "1000"]);
    assert_eq!(field(&second, "applied"), 100, "{second:?}");
    cluster.await_height(field(&second, "height"));
    let log2 = cluster.local.current_log(2);
    assert!(log2.contains("torn_tail=true"), "replica 2:\n{log2}");
    let log1 = cluster.local.current_log(1);
    assert!(log1.contains("records=0 "), "replica 1:\n{log1}");
    assert!(log1.contains("rejoining"), "replica 1:\n{log1}");

    // It signs nothing until it is past what it may have signed before; then, with
    // replica 3 down, a quorum (3 of 4) needs replica 1's votes again.
    cluster.await_rejoined(1, 10_000);
    cluster.commits_without(3, 2000);
}

#[test]
fn a_replica_stopped_past_a_stable_checkpoint_rejoins_by_state_transfer_and_votes_again() {
    let mut cluster = Cluster::running(&ONE_DOMAIN);
    // Replica 3 has a log of its own (killed with an empty one, it would rejoin as a
    // replica whose disk was lost, which another test shows).
    let first = cluster.submit_ok(&["--count", "20", "--first-key", "30000"]);
    cluster.await_height(field(&first, "height"));
    cluster.kill(3);
    // Small windows make many blocks: the others pass stable checkpoints (every 100
    // blocks) and drop what lies below them, so replica 3 cannot replay its way back.
    cluster.load_until("height 250", |c| c.height(0) >= 250);
    cluster.start(3);
    let installed = cluster
        .local
        .await_line(3, "installed snapshot", PATIENCE)
        .unwrap();
    assert!(installed.contains("height="), "{installed}");

    // With replica 2 down, a quorum (3 of 4) needs replica 3's votes again.
    cluster.commits_without(2, 50_000);
}

#[test]
fn logs_compact_at_stable_checkpoints_and_a_killed_replica_restarts_from_its_compacted_log() {
    let mut cluster = Cluster::files(&ONE_DOMAIN);
    for id in 0..cluster.replicas() {
        cluster
            .local
            .add_args(id, &["--compact-after-records", "300"]);
    }
    cluster.local.start_all().unwrap();
    cluster.load_until("compaction", |c| {
        c.local.count_lines(2, "log compacted") >= 2
    });
    assert!(cluster.local.data_dir(2).join("log-base").exists());

    // SIGKILL: replica 2 restarts from its base and the log after it, and votes again
    // (with replica 3 down, the quorum needs it).
    cluster.kill(2);
    cluster.start(2);
    cluster
        .local
        .await_line(2, "restored from", PATIENCE)
        .unwrap();
    cluster.commits_without(3, 50_000);
    // The same keys again: the restored ledger remembers them.
    let replay = cluster.submit_ok(&["--count", "200", "--first-key", "1"]);
    assert_eq!(field(&replay, "duplicate"), 200, "{replay:?}");
}
