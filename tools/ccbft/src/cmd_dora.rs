//! `ccbft dora ...`: the DORA compliance engine (crate `ccbft-dora`).

use crate::sim_target::SimTarget;
use anyhow::{bail, Context};
use ccbft_core::topology::Topology;
use ccbft_dora::chrono::{DateTime, Utc};
use ccbft_dora::classify::{classify, ClassificationInput};
use ccbft_dora::deadlines::{self, DeadlineInput, EntityType, HolidayCalendar, ReportingConfig};
use ccbft_dora::incident::OperatorFacts;
use ccbft_dora::register::{self, RegisterConfig};
use ccbft_dora::report::{self, ReportInputs, Stage};
use ccbft_dora::resilience::{run_scenario, Evidence, Scenario};
use ccbft_dora::state::Engine;
use ccbft_dora::{audit, dashboard, health, read_bounded};
use ccbft_dora::{export, xbrl_csv};
use clap::{Args, Subcommand};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Args)]
pub struct DoraArgs {
    #[command(subcommand)]
    command: DoraCommand,
}

impl DoraArgs {
    /// `dora serve` keeps running when a client goes away.
    pub fn is_server(&self) -> bool {
        matches!(self.command, DoraCommand::Serve { .. })
    }
}

#[derive(Args, Clone)]
struct StateArg {
    /// Engine state directory (created by `ccbft dora init`).
    #[arg(long, default_value = "dora-state")]
    state: PathBuf,
}

#[derive(Args, Clone, Copy)]
struct JsonArg {
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Longest observation window of `dora test`, in simulated milliseconds. The simulator stops
/// at its event cap after about two simulated minutes of the shipped clusters; a window it
/// cannot finish is refused before the run instead of reported as a breach.
pub const OBSERVE_MS_MAX: u64 = 60_000;
/// Longest observation window of `dora test --live`, in wall-clock milliseconds (a replica
/// that rejoins after losing its log may take minutes to catch up).
pub const LIVE_OBSERVE_MS_MAX: u64 = 600_000;

#[derive(Subcommand)]
enum DoraCommand {
    /// Create a new, empty state directory (every other state command needs one).
    Init {
        #[command(flatten)]
        state: StateArg,
    },
    /// Classify one incident (JSON file) per Delegated Regulation (EU) 2024/1772.
    Classify {
        /// Incident JSON in the classification input schema (unknown fields are refused).
        file: PathBuf,
        #[command(flatten)]
        reporting: ReportingArgs,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Report time limits per Delegated Regulation (EU) 2025/301 Art. 5; exits 1 when a
    /// report is overdue at --now.
    Deadlines {
        /// When the entity became aware of the incident (RFC 3339, e.g. 2026-01-31T10:00:00Z).
        #[arg(long, value_parser = parse_time)]
        detected_at: DateTime<Utc>,
        /// When it was classified as major (RFC 3339, not before --detected-at).
        #[arg(long, value_parser = parse_time)]
        classified_at: DateTime<Utc>,
        /// When the initial notification was sent (RFC 3339), if it was.
        #[arg(long, value_parser = parse_time)]
        initial_sent: Option<DateTime<Utc>>,
        /// When the latest intermediate report was sent (RFC 3339), if it was.
        #[arg(long, value_parser = parse_time)]
        intermediate_sent: Option<DateTime<Utc>>,
        /// Also list overdue reports as of this time (RFC 3339).
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        #[command(flatten)]
        reporting: ReportingArgs,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
    /// Register of information (Implementing Regulation (EU) 2024/2956) and concentration risk (DORA Art. 29).
    #[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
    Register {
        #[command(subcommand)]
        command: Option<RegisterCommand>,
        /// The cluster file (TOML) whose providers the register lists.
        #[arg(long)]
        cluster: Option<PathBuf>,
        /// Operator identifiers (LEIs, contracts, ...) as JSON: a register configuration, or
        /// an engine config.json (its `register` section and profile are used).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Print JSON.
        #[arg(long)]
        json: bool,
        /// Write one CSV file per template into this directory.
        #[arg(long)]
        csv_dir: Option<PathBuf>,
        /// Write the EBA plain-csv (xBRL-CSV) report package (ZIP) to this file.
        #[arg(long)]
        xbrl_csv: Option<PathBuf>,
        /// Creation time in the package name (RFC 3339; default: now).
        #[arg(long, value_parser = parse_time)]
        created: Option<DateTime<Utc>>,
    },
    /// Forward audit entries (incidents, classification changes, reports, tests) and missed
    /// deadlines to the SIEM/SOAR sinks of the engine configuration (`export`), through a
    /// persistent outbox under <state>/export; run it from a timer.
    Export {
        #[command(flatten)]
        state: StateArg,
        /// Time that decides missed deadlines (RFC 3339; default: now).
        #[arg(long, value_parser = parse_time)]
        at: Option<DateTime<Utc>>,
    },
    /// Run a resilience-test scenario against a cluster (DORA Art. 24-25).
    /// The target is the deterministic simulator running the cluster's topology, or with
    /// --live the running cluster itself; the evidence record (which says its target) is
    /// stored under the state directory (tests/) and audited.
    Test {
        /// byzantine-leader, domain-partition, provider-outage, disk-corruption, latency-spike, crash-loop.
        #[arg(long)]
        scenario: String,
        /// The cluster file (TOML) whose topology the simulator runs; with --live, the
        /// cluster.toml in the directory `ccbft cluster up` supervises.
        #[arg(long)]
        cluster: PathBuf,
        /// Run against the live cluster (real processes, payments, kills, link cuts; times
        /// and --fault-ms/--observe-ms are wall-clock) instead of the simulator.
        #[arg(long)]
        live: bool,
        #[command(flatten)]
        state: StateArg,
        /// Simulator seed (the run replays exactly from it).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Milliseconds the fault holds before it is healed (simulated: 1 to 59,999; live:
        /// wall-clock, up to 599,999).
        #[arg(long, default_value_t = 2_000, value_parser = clap::value_parser!(u64).range(1..LIVE_OBSERVE_MS_MAX))]
        fault_ms: u64,
        /// Milliseconds observed from the injection, fault phase included, more than
        /// --fault-ms (simulated: at most 60,000; live: at most 600,000, and the observation
        /// ends at recovery).
        #[arg(long, default_value_t = 8_000, value_parser = clap::value_parser!(u64).range(2..=LIVE_OBSERVE_MS_MAX))]
        observe_ms: u64,
        #[command(flatten)]
        json: JsonArg,
    },
    /// The signed, hash-chained audit trail.
    Audit {
        #[command(subcommand)]
        command: AuditCommand,
    },
    /// Serve the dashboard from the state directory (pages and JSON for anyone who can
    /// connect; POST /api/events and any other state change need the bearer token).
    Serve {
        #[command(flatten)]
        state: StateArg,
        /// Socket address to listen on.
        #[arg(long, default_value = "127.0.0.1:8088")]
        listen: String,
        /// Bearer token file for state-changing requests (mode 0600, no symbolic link;
        /// default: STATE/keys/dashboard.token, written by `dora init`; without either the
        /// server serves the pages only).
        #[arg(long)]
        token_file: Option<PathBuf>,
    },
    /// Install the cluster file into the state directory (domain health, concentration).
    SetCluster {
        #[command(flatten)]
        state: StateArg,
        /// The cluster file (TOML).
        cluster: PathBuf,
    },
    /// Feed health events (JSON Lines, schema tools/dora/schema/health-event.schema.json).
    /// Events already ingested (same event_id) are recognised and change nothing.
    Ingest {
        #[command(flatten)]
        state: StateArg,
        /// The JSON Lines file of health events.
        events: PathBuf,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Follow a running cluster's control planes and open and update incidents from what
    /// they show (replicas down and up, equivocation, commit stalls) until stopped (SIGTERM,
    /// Ctrl-C) or `--duration-s` has passed; prints each event as it is ingested.
    Watch {
        #[command(flatten)]
        state: StateArg,
        /// The cluster file (replicas, their domains and addresses).
        #[arg(long)]
        cluster: PathBuf,
        /// A replica's control plane, ID=HOST:PORT (repeat per replica; default the cluster
        /// file's `control_address`, else 127.0.0.1 on its port + 2000).
        #[arg(long = "control", value_name = "ID=HOST:PORT", value_parser = parse_control)]
        controls: Vec<(u32, String)>,
        /// Milliseconds between polls.
        #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u64).range(10..=60_000))]
        interval_ms: u64,
        /// Seconds the executed height may stand still while clients wait before it is a
        /// commit stall.
        #[arg(long, default_value_t = 10, value_parser = clap::value_parser!(u64).range(1..))]
        stall_s: u64,
        /// Globally final latency (milliseconds, as each replica's clients see it) above which
        /// the SLA is breached.
        #[arg(long, default_value_t = crate::dora_watch::SLA_MS, value_parser = clap::value_parser!(u64).range(1..))]
        sla_ms: u64,
        /// Stop after this many seconds.
        #[arg(long)]
        duration_s: Option<u64>,
    },
    /// Incidents of the state directory.
    Incident {
        #[command(subcommand)]
        command: IncidentCommand,
    },
    /// Build an initial, intermediate or final report (Implementing Regulation (EU) 2025/302).
    Report {
        #[command(flatten)]
        state: StateArg,
        /// Incident id, as `dora incident list` shows it.
        #[arg(long)]
        incident: String,
        /// initial, intermediate, final or reclassified.
        #[arg(long)]
        stage: String,
        /// Operator report content as JSON.
        #[arg(long)]
        inputs: Option<PathBuf>,
        /// Also write the readable HTML here.
        #[arg(long)]
        html: Option<PathBuf>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Validate a report JSON file against the shipped schema.
    ValidateReport {
        /// The report JSON file.
        file: PathBuf,
    },
    /// Assess a cyber threat (JSON) under Art. 10 of 2024/1772.
    Threat {
        /// Threat JSON (unknown fields are refused).
        file: PathBuf,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Recurring incidents (Art. 8(2) of 2024/1772), checked as of a time.
    Recurring {
        #[command(flatten)]
        state: StateArg,
        /// Check as of this time (RFC 3339; default now).
        #[arg(long, value_parser = parse_time)]
        at: Option<DateTime<Utc>>,
        #[command(flatten)]
        json: JsonArg,
    },
}

#[derive(Subcommand)]
enum RegisterCommand {
    /// Check an xBRL-CSV register package locally (structure, names, columns, codes, LEIs,
    /// references); exit 1 with one line per finding.
    Validate {
        /// The package (ZIP) written by `register --xbrl-csv`.
        package: PathBuf,
    },
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Verify an audit directory; names the first bad entry.
    Verify {
        /// The audit directory (STATE/audit).
        dir: PathBuf,
        /// Print JSON instead of text.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Subcommand)]
enum IncidentCommand {
    /// List incidents with their time limits; exits 1 when a report is overdue.
    List {
        #[command(flatten)]
        state: StateArg,
        /// Judge overdue reports as of this time (RFC 3339; default now).
        #[arg(long, value_parser = parse_time)]
        now: Option<DateTime<Utc>>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Record operator facts (JSON) for an incident.
    Facts {
        #[command(flatten)]
        state: StateArg,
        /// Incident id, as `dora incident list` shows it.
        id: String,
        /// Operator facts JSON (unknown fields are refused; checked like `dora classify`).
        file: PathBuf,
    },
    /// Classify an incident from its events and facts.
    Classify {
        #[command(flatten)]
        state: StateArg,
        /// Incident id, as `dora incident list` shows it.
        id: String,
        /// Classification time (RFC 3339, not before detection; default now).
        #[arg(long, value_parser = parse_time)]
        at: Option<DateTime<Utc>>,
        #[command(flatten)]
        json: JsonArg,
    },
    /// Record that a report was sent.
    Sent {
        #[command(flatten)]
        state: StateArg,
        /// Incident id, as `dora incident list` shows it.
        id: String,
        /// initial, intermediate, final or reclassified.
        stage: String,
        /// When it was sent (RFC 3339, not before detection; default now).
        #[arg(long, value_parser = parse_time)]
        at: Option<DateTime<Utc>>,
    },
}

/// Entity configuration for the time limits (defaults: credit institution, not NIS2,
/// Europe/Berlin, TARGET holidays).
#[derive(Args, Clone)]
struct ReportingArgs {
    /// Entity type (DORA Art. 2(1)), e.g. credit_institution, payment_institution.
    #[arg(long, default_value = "credit_institution")]
    entity_type: String,
    /// The entity is an essential or important entity under NIS2 Art. 3.
    #[arg(long)]
    nis2: bool,
    /// The competent authority disapplied the weekend/holiday extension.
    #[arg(long)]
    authority_disapplied: bool,
    /// IANA time zone of the entity.
    #[arg(long, default_value = "Europe/Berlin")]
    time_zone: String,
    /// Holiday calendar: target or none.
    #[arg(long, default_value = "target")]
    holidays: String,
    /// Extra holidays, one YYYY-MM-DD per line.
    #[arg(long)]
    holiday_file: Option<PathBuf>,
}

impl ReportingArgs {
    fn config(&self) -> anyhow::Result<ReportingConfig> {
        let mut holidays = HolidayCalendar::parse_named(&self.holidays)?;
        if let Some(file) = &self.holiday_file {
            let text = read_bounded(file).with_context(|| format!("reading {}", file.display()))?;
            holidays.add_dates(&text)?;
            holidays.name = format!("{}+{}", holidays.name, file.display());
        }
        let config = ReportingConfig {
            entity_type: EntityType::parse(&self.entity_type)?,
            nis2_essential_or_important: self.nis2,
            authority_disapplied_extension: self.authority_disapplied,
            time_zone: self.time_zone.clone(),
            holidays,
        };
        config.tz()?;
        Ok(config)
    }
}

fn parse_time(text: &str) -> Result<DateTime<Utc>, String> {
    let t = DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| {
            format!("{text:?} is not an RFC 3339 time ({e}), e.g. 2026-01-31T10:00:00Z")
        })?;
    deadlines::check_time("time", t).map_err(|e| e.to_string())?;
    Ok(t)
}

fn print_json(value: &impl serde::Serialize) -> anyhow::Result<()> {
    println!("{}", serde_json::to_string_pretty(value)?);
    Ok(())
}

/// The dashboard's bearer token: the file given (which must load), else the state
/// directory's own when it exists (a bad one is an error too, never ignored).
fn serve_token(
    state: &Path,
    given: Option<&Path>,
) -> anyhow::Result<Option<ccbft_dora::token::Token>> {
    use ccbft_dora::token::{Token, TOKEN_FILE};
    let default = state.join(TOKEN_FILE);
    let path = match given {
        Some(p) => p,
        None => match std::fs::symlink_metadata(&default) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            _ => default.as_path(),
        },
    };
    Ok(Some(Token::load(path)?))
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> anyhow::Result<T> {
    let text = read_bounded(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("parsing {}", path.display()))
}

pub fn run(args: DoraArgs) -> anyhow::Result<ExitCode> {
    match args.command {
        DoraCommand::Init { state } => {
            Engine::init(&state.state)?;
            println!("state directory {} created", state.state.display());
            println!(
                "dashboard bearer token in {} (mode 0600): send it as `Authorization: Bearer <token>` to change state through `dora serve`",
                state.state.join(ccbft_dora::token::TOKEN_FILE).display()
            );
            Ok(ExitCode::SUCCESS)
        }
        DoraCommand::Classify {
            file,
            reporting,
            json,
        } => cmd_classify(&file, &reporting, json.json),
        DoraCommand::Deadlines {
            detected_at,
            classified_at,
            initial_sent,
            intermediate_sent,
            now,
            reporting,
            json,
        } => {
            let input = DeadlineInput {
                detected_at,
                classified_at,
                initial_sent,
                intermediate_sent,
            };
            cmd_deadlines(&input, &reporting.config()?, now, json)
        }
        DoraCommand::Register {
            command: Some(RegisterCommand::Validate { package }),
            ..
        } => cmd_register_validate(&package),
        DoraCommand::Register {
            command: None,
            cluster,
            config,
            json,
            csv_dir,
            xbrl_csv,
            created,
        } => {
            let cluster = cluster.context("--cluster is required")?;
            let exit = cmd_register(&cluster, config.as_deref(), json, csv_dir.as_deref())?;
            match xbrl_csv {
                Some(out) => cmd_register_xbrl(&cluster, config.as_deref(), &out, created),
                None => Ok(exit),
            }
        }
        DoraCommand::Export { state, at } => cmd_export(&state.state, at.unwrap_or_else(Utc::now)),
        DoraCommand::Test {
            scenario,
            cluster,
            live,
            state,
            seed,
            fault_ms,
            observe_ms,
            json,
        } => cmd_test(
            &TestRun {
                scenario: &scenario,
                cluster: &cluster,
                live,
                state: &state.state,
                seed,
                fault_ms,
                observe_ms,
            },
            json.json,
        ),
        DoraCommand::Audit {
            command: AuditCommand::Verify { dir, json },
        } => cmd_audit_verify(&dir, json),
        DoraCommand::Serve {
            state,
            listen,
            token_file,
        } => {
            Engine::open(&state.state)?;
            let token = serve_token(&state.state, token_file.as_deref())?;
            let read_only = token.is_none();
            let config = dashboard::ServerConfig {
                token,
                ..Default::default()
            };
            let server = dashboard::Server::start_with(&state.state, &listen, config)
                .with_context(|| format!("binding {listen}"))?;
            eprintln!(
                "DORA dashboard on http://{}/ serving {}",
                server.addr,
                state.state.display()
            );
            if read_only {
                eprintln!(
                    "no token file {}: serving the pages only, every state-changing request is refused (401); give one with --token-file",
                    state.state.join(ccbft_dora::token::TOKEN_FILE).display()
                );
            }
            server.wait();
            // The server runs until killed: its accept loop ending is a failure.
            bail!("the dashboard server stopped unexpectedly")
        }
        DoraCommand::SetCluster { state, cluster } => {
            let text =
                read_bounded(&cluster).with_context(|| format!("reading {}", cluster.display()))?;
            let mut engine = Engine::open(&state.state)?;
            engine.set_cluster(&text)?;
            println!("cluster installed into {}", state.state.display());
            Ok(ExitCode::SUCCESS)
        }
        DoraCommand::Ingest {
            state,
            events,
            json,
        } => {
            let text =
                read_bounded(&events).with_context(|| format!("reading {}", events.display()))?;
            let parsed = health::parse_stream(&text)
                .with_context(|| format!("event stream {}", events.display()))?;
            let mut engine = Engine::open(&state.state)?;
            let outcomes = engine.ingest(&parsed)?;
            if json.json {
                print_json(&outcomes)?;
            } else {
                print_ingested(&outcomes);
            }
            Ok(ExitCode::SUCCESS)
        }
        DoraCommand::Watch {
            state,
            cluster,
            controls,
            interval_ms,
            stall_s,
            sla_ms,
            duration_s,
        } => {
            let ingested = crate::dora_watch::run(crate::dora_watch::WatchOptions {
                state: state.state,
                cluster,
                controls: controls.into_iter().collect(),
                interval: std::time::Duration::from_millis(interval_ms),
                stall: std::time::Duration::from_secs(stall_s),
                sla: std::time::Duration::from_millis(sla_ms),
                duration: duration_s.map(std::time::Duration::from_secs),
            })?;
            println!("{ingested} events ingested; stopped");
            Ok(ExitCode::SUCCESS)
        }
        DoraCommand::Incident { command } => cmd_incident(command),
        DoraCommand::Report {
            state,
            incident,
            stage,
            inputs,
            html,
            json,
        } => cmd_report(
            &state.state,
            &incident,
            &stage,
            inputs.as_deref(),
            html.as_deref(),
            json.json,
        ),
        DoraCommand::ValidateReport { file } => {
            let value: serde_json::Value = read_json(&file)?;
            match report::check_value(value) {
                Ok(r) => {
                    println!("valid {} report", r.stage.name());
                    Ok(ExitCode::SUCCESS)
                }
                Err(e) => {
                    eprintln!("{e}");
                    Ok(ExitCode::from(crate::EXIT_FOUND))
                }
            }
        }
        DoraCommand::Threat { file, json } => {
            let input: ccbft_dora::threat::ThreatInput = read_json(&file)?;
            let assessment = ccbft_dora::threat::assess(&input);
            if json.json {
                print_json(&assessment)?;
            } else {
                println!(
                    "significant cyber threat: {}",
                    if assessment.significant { "yes" } else { "no" }
                );
                println!("{}", assessment.explanation);
                println!("{}", assessment.notification);
            }
            Ok(ExitCode::SUCCESS)
        }
        DoraCommand::Recurring { state, at, json } => {
            let engine = Engine::open(&state.state)?;
            let groups = engine.recurring(at.unwrap_or_else(Utc::now));
            if json.json {
                print_json(&groups)?;
            } else if groups.is_empty() {
                println!("no recurring incidents (Art. 8(2) of 2024/1772)");
            } else {
                for g in &groups {
                    println!(
                        "recurring, root cause {:?}: {}",
                        g.root_cause,
                        g.incident_ids.join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_ingested(outcomes: &[ccbft_dora::incident::Ingested]) {
    use ccbft_dora::incident::Ingested;
    let mut counts: std::collections::BTreeMap<&str, usize> = Default::default();
    for o in outcomes {
        let name = match o {
            Ingested::Opened(_) => "opened an incident",
            Ingested::Merged(_) => "merged into an incident",
            Ingested::Recovered(_) => "recovered an incident",
            Ingested::ConditionEnded(_) => "ended a condition",
            Ingested::Unmatched => "matched nothing",
            Ingested::Duplicate => "already ingested (ignored)",
        };
        *counts.entry(name).or_default() += 1;
    }
    println!("{} events ingested", outcomes.len());
    for (name, n) in counts {
        println!("  {n} {name}");
    }
}

fn cmd_classify(file: &Path, reporting: &ReportingArgs, json: bool) -> anyhow::Result<ExitCode> {
    let text = read_bounded(file).with_context(|| format!("reading {}", file.display()))?;
    let input = ClassificationInput::from_json_str(&text)
        .with_context(|| format!("incident file {}", file.display()))?;
    let c = classify(&input);
    let mut out = json!({
        "major": c.major,
        "criteria_met": c.criteria_met,
        "thresholds_met": c.thresholds_met,
        "explanation": c.explanation,
        "criteria": c.criteria,
        "regulation": "Commission Delegated Regulation (EU) 2024/1772, Art. 1-9",
    });
    if let (true, Some(classified_at)) = (c.major, input.classified_at) {
        let d = deadlines::compute(
            &DeadlineInput {
                detected_at: input.detected_at,
                classified_at,
                initial_sent: None,
                intermediate_sent: None,
            },
            &reporting.config()?,
        )?;
        out["deadlines"] = serde_json::to_value(d)?;
    }
    if json {
        print_json(&out)?;
    } else {
        print_classification(&c);
        if let Some(d) = out.get("deadlines") {
            println!(
                "initial notification due {}, intermediate report {}, final report {}",
                d["initial_due"], d["intermediate_due"], d["final_due"]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn print_classification(c: &ccbft_dora::classify::Classification) {
    println!("major incident: {}", if c.major { "yes" } else { "no" });
    let met: Vec<String> = c
        .criteria_met
        .iter()
        .map(|x| {
            serde_json::to_value(x)
                .map(|v| v.to_string())
                .unwrap_or_default()
        })
        .collect();
    println!(
        "criteria met: {}",
        if met.is_empty() {
            "none".to_string()
        } else {
            met.join(", ")
        }
    );
    println!("{}", c.explanation);
}

fn cmd_deadlines(
    input: &DeadlineInput,
    config: &ReportingConfig,
    now: Option<DateTime<Utc>>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let d = deadlines::compute(input, config)?;
    let alerts = now
        .map(|n| deadlines::overdue(&d, input, None, n))
        .unwrap_or_default();
    if json {
        let mut value = serde_json::to_value(&d)?;
        value["overdue"] = serde_json::to_value(&alerts)?;
        print_json(&value)?;
    } else {
        println!(
            "initial notification due:  {}  ({})",
            d.initial_due, d.initial.rule
        );
        println!(
            "intermediate report due:   {}  ({})",
            d.intermediate_due, d.intermediate.rule
        );
        println!(
            "final report due:          {}  ({})",
            d.final_due, d.final_report.rule
        );
        for note in &d.notes {
            println!("note: {note}");
        }
        for a in &alerts {
            println!("ALERT: {}", a.message);
        }
    }
    Ok(if alerts.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_FOUND)
    })
}

fn cmd_register(
    cluster: &Path,
    config: Option<&Path>,
    json: bool,
    csv_dir: Option<&Path>,
) -> anyhow::Result<ExitCode> {
    let topology = Topology::load(cluster)?;
    let config: RegisterConfig = match config {
        Some(p) => register_config(p)?,
        None => RegisterConfig::default(),
    };
    config
        .check(&topology)
        .map_err(|e| anyhow::anyhow!("register configuration: {e}"))?;
    let reg = register::build(&topology, &config);
    if let Some(dir) = csv_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        for t in &reg.templates {
            let path = dir.join(format!("{}.csv", t.template.to_lowercase()));
            std::fs::write(&path, t.to_csv())
                .with_context(|| format!("writing {}", path.display()))?;
        }
    }
    if json {
        print_json(&reg)?;
    } else {
        println!(
            "Register of information and concentration risk for cluster {}",
            reg.cluster
        );
        for line in &reg.concentration.summary {
            println!("- {line}");
        }
        println!(
            "HHI (providers) = {:.0}, HHI (regions) = {:.0}",
            reg.concentration.hhi_providers, reg.concentration.hhi_regions
        );
        if !reg.missing_identifiers.is_empty() {
            println!(
                "Missing operator identifiers: {}",
                reg.missing_identifiers.join("; ")
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn cmd_register_xbrl(
    cluster: &Path,
    config: Option<&Path>,
    out: &Path,
    created: Option<DateTime<Utc>>,
) -> anyhow::Result<ExitCode> {
    let topology = Topology::load(cluster)?;
    let config: RegisterConfig = match config {
        Some(p) => register_config(p)?,
        None => RegisterConfig::default(),
    };
    config
        .check(&topology)
        .map_err(|e| anyhow::anyhow!("register configuration: {e}"))?;
    let created = created.unwrap_or_else(Utc::now);
    match xbrl_csv::package(&topology, &config, created) {
        Ok(package) => {
            xbrl_csv::write_zip(&package, out)?;
            eprintln!(
                "wrote {} (package {}; file it as {}.zip)",
                out.display(),
                package.name,
                package.name
            );
            Ok(ExitCode::SUCCESS)
        }
        Err(e) => {
            eprintln!("{e}");
            Ok(ExitCode::from(1))
        }
    }
}

fn cmd_export(state: &Path, now: DateTime<Utc>) -> anyhow::Result<ExitCode> {
    let engine = Engine::open(state)?;
    let cfg = engine
        .config
        .export
        .clone()
        .context("no \"export\" section in config.json (syslog, cef and/or webhook)")?;
    let mut events = export::audit_events(state)?;
    for incident in engine.tracker.incidents.iter() {
        for alert in engine.overdue(incident, now) {
            events.push(export::from_overdue(&incident.id, &alert));
        }
        let window = i64::from(cfg.due_warning_minutes);
        for alert in engine.coming_due(incident, now, window) {
            events.push(export::from_due(&incident.id, &alert));
        }
    }
    let mut outbox = export::Outbox::open(&state.join("export"))?;
    let new = outbox.enqueue(&events)?;
    let now_ms = u64::try_from(now.timestamp_millis()).unwrap_or(0);
    let report = export::deliver_all(&mut outbox, &cfg, now_ms)?;
    println!(
        "{new} new events queued ({} in the outbox)",
        outbox.events().len()
    );
    let mut failed = false;
    for (sink, delivered, error) in report {
        match error {
            Some(e) => {
                failed = true;
                println!("{sink}: {delivered} delivered, then failed: {e} (retried with back-off)");
            }
            None => println!("{sink}: {delivered} delivered"),
        }
    }
    Ok(if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_register_validate(package: &Path) -> anyhow::Result<ExitCode> {
    let findings = xbrl_csv::validate_zip(package)?;
    if findings.is_empty() {
        println!("{}: accepted by the local checks", package.display());
        return Ok(ExitCode::SUCCESS);
    }
    for f in &findings {
        println!("{f}");
    }
    println!(
        "{}: refused ({} findings)",
        package.display(),
        findings.len()
    );
    Ok(ExitCode::from(1))
}

/// A register configuration file: a register.json, or an engine config.json whose
/// `register` section is used (with the profile's name and LEI when the section has none).
fn register_config(path: &Path) -> anyhow::Result<RegisterConfig> {
    let value: serde_json::Value = read_json(path)?;
    let engine_keys = [
        "reporting",
        "profile",
        "register",
        "merge",
        "recurring_exempt",
    ];
    let is_engine = value
        .as_object()
        .is_some_and(|o| o.keys().any(|k| engine_keys.contains(&k.as_str())));
    if !is_engine {
        return serde_json::from_value(value)
            .with_context(|| format!("parsing {}", path.display()));
    }
    let engine: ccbft_dora::state::EngineConfig =
        serde_json::from_value(value).with_context(|| format!("parsing {}", path.display()))?;
    let mut config = engine.register;
    if let Some(profile) = engine.profile {
        config.entity_lei.get_or_insert(profile.lei);
        config.entity_name.get_or_insert(profile.name);
    }
    Ok(config)
}

/// What `dora test` runs.
struct TestRun<'a> {
    scenario: &'a str,
    cluster: &'a Path,
    live: bool,
    state: &'a Path,
    seed: u64,
    fault_ms: u64,
    observe_ms: u64,
}

fn cmd_test(run: &TestRun, json: bool) -> anyhow::Result<ExitCode> {
    let (scenario, fault_ms, observe_ms) = (run.scenario, run.fault_ms, run.observe_ms);
    let Some(parsed) = Scenario::parse(scenario) else {
        bail!(
            "unknown scenario {scenario:?}; known: {}",
            Scenario::NAMES.join(", ")
        );
    };
    if observe_ms <= fault_ms {
        bail!("--observe-ms ({observe_ms}) must exceed --fault-ms ({fault_ms})");
    }
    if !run.live && fault_ms >= OBSERVE_MS_MAX {
        bail!(
            "--fault-ms ({fault_ms}) is below {OBSERVE_MS_MAX} against the simulator, whose \
             event cap ends longer runs (--live takes up to {LIVE_OBSERVE_MS_MAX})"
        );
    }
    if !run.live && observe_ms > OBSERVE_MS_MAX {
        bail!(
            "--observe-ms ({observe_ms}) is at most {OBSERVE_MS_MAX} against the simulator, \
             whose event cap ends longer runs (--live takes up to {LIVE_OBSERVE_MS_MAX})"
        );
    }
    let topology = Topology::load(run.cluster)?;
    let engine = Engine::open(run.state)?;
    if run.live {
        return cmd_test_live(run, &parsed, &engine, json);
    }
    let mut target = SimTarget::new(topology, run.seed, Utc::now());
    // A simulated replica's failed assertion is printed by the default hook and reported as
    // a violation below.
    let outcome = run_scenario(
        &mut target,
        &parsed,
        std::time::Duration::from_millis(fault_ms),
        std::time::Duration::from_millis(observe_ms),
    );
    let mut evidence = match outcome {
        Ok(evidence) => evidence,
        Err(e) if target.report().is_some_and(crate::cmd_sim::hit_event_cap) => {
            eprintln!("error: {e}; no evidence recorded");
            return Ok(ExitCode::from(crate::EXIT_INCOMPLETE));
        }
        Err(e) => return Err(e.into()),
    };
    // The simulator's checkers (agreement, total order, conservation, liveness) judge the
    // run too; a violation fails the test.
    if let Some(report) = target.report() {
        for v in &report.violations {
            evidence
                .findings
                .push(format!("simulator checker (seed {}): {}", v.seed, v.what));
        }
        evidence.passed = evidence.findings.is_empty();
    }
    record_test(&engine, run.state, &evidence, target.report(), json)
}

/// `dora test --live`: the scenario against the cluster supervised in the cluster file's
/// directory.
fn cmd_test_live(
    run: &TestRun,
    scenario: &Scenario,
    engine: &Engine,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let dir = run
        .cluster
        .parent()
        .map(ccbft_node::supervisor::ClusterDir::new)
        .context("--cluster names no directory")?;
    let mut target = crate::live_target::LiveTarget::new(dir)?;
    if !json {
        println!("injecting {} into the live cluster...", run.scenario);
    }
    let evidence = run_scenario(
        &mut target,
        scenario,
        std::time::Duration::from_millis(run.fault_ms),
        std::time::Duration::from_millis(run.observe_ms),
    )?;
    record_test(engine, run.state, &evidence, None, json)
}

/// Stores the evidence, prints it, and exits 0 if the test passed, 1 if not.
fn record_test(
    engine: &Engine,
    state: &Path,
    evidence: &Evidence,
    report: Option<&ccbft_core::sim::RunReport>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let name = engine.record_test(evidence)?;
    let path = state.join("tests").join(&name);
    if json {
        let mut value = serde_json::to_value(evidence)?;
        value["evidence_file"] = json!(path.display().to_string());
        print_json(&value)?;
    } else {
        print_test_summary(evidence, report);
        println!("evidence recorded: {}", path.display());
    }
    Ok(if evidence.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_FOUND)
    })
}

fn print_test_summary(evidence: &Evidence, report: Option<&ccbft_core::sim::RunReport>) {
    let secs = |s: Option<f64>| s.map_or("never".to_string(), |s| format!("{s:.3} s"));
    println!(
        "Resilience test {}: {}",
        Scenario::NAMES
            .iter()
            .find(|n| Scenario::parse(n).as_ref() == Some(&evidence.injection.scenario))
            .unwrap_or(&"?"),
        if evidence.passed { "PASSED" } else { "FAILED" }
    );
    println!("  target:    {}", evidence.target);
    println!("  injected:  {}", evidence.injection.description);
    if let Some(r) = report {
        println!("  shape:     {}", r.shape);
        let mut entries: std::collections::BTreeMap<&str, usize> = Default::default();
        for (_, _, kind, _) in &r.health {
            *entries.entry(kind.as_str()).or_default() += 1;
        }
        println!(
            "  simulator: {} health entries {:?}, protocol evidence {:?}, {} violations",
            r.health.len(),
            entries,
            r.evidence,
            r.violations.len()
        );
        println!(
            "  global blocks executed during the fault phase: {}{}",
            r.height_at_heal,
            if r.height_at_heal == 0 {
                " (the global tier made no progress until the heal)"
            } else {
                ""
            }
        );
    }
    match &evidence.detected_by {
        Some(d) => println!(
            "  detected:  {} after injection (first derived health event opening or updating an incident: {} {}, incident {})",
            secs(evidence.time_to_detect_seconds),
            d.kind.name(),
            d.event_id,
            d.incident
        ),
        None => println!("  detected:  not detected"),
    }
    println!(
        "  recovered: {} after injection (first commit after the heal)",
        secs(evidence.time_to_recover_seconds)
    );
    println!(
        "  transactions: {} submitted, {} committed, {} lost",
        evidence.transactions_submitted,
        evidence.transactions_committed,
        evidence.transactions_lost
    );
    let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
    for e in &evidence.health_events {
        *kinds.entry(e.kind.name()).or_default() += 1;
    }
    let kinds: Vec<String> = kinds.iter().map(|(k, n)| format!("{k} x{n}")).collect();
    println!("  health events: {}", kinds.join(", "));
    let mut injected: std::collections::BTreeMap<String, usize> = Default::default();
    for e in &evidence.injected_events {
        *injected.entry(e.kind.name()).or_default() += 1;
    }
    if !injected.is_empty() {
        let injected: Vec<String> = injected.iter().map(|(k, n)| format!("{k} x{n}")).collect();
        println!(
            "  injected (the target's own records, not used for detection): {}",
            injected.join(", ")
        );
    }
    if !evidence.incidents_opened.is_empty() {
        println!(
            "  incidents opened (fresh tracker): {}",
            evidence.incidents_opened.join(", ")
        );
    }
    for f in &evidence.findings {
        println!("  FINDING: {f}");
    }
}

fn cmd_audit_verify(dir: &Path, json: bool) -> anyhow::Result<ExitCode> {
    let verdict = audit::verify_dir(dir)?;
    if json {
        print_json(&verdict)?;
    } else if let Some(bad) = &verdict.first_bad {
        println!("audit trail {} is NOT intact: {bad}", dir.display());
    } else {
        println!(
            "audit trail {} is intact: {} entries verified",
            dir.display(),
            verdict.entries
        );
    }
    Ok(if verdict.ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::EXIT_FOUND)
    })
}

fn parse_stage(text: &str) -> anyhow::Result<Stage> {
    Stage::parse(text).with_context(|| {
        format!("unknown stage {text:?}: use initial, intermediate, final or reclassified")
    })
}

fn cmd_incident(command: IncidentCommand) -> anyhow::Result<ExitCode> {
    match command {
        IncidentCommand::List { state, now, json } => {
            return cmd_incident_list(&state.state, now.unwrap_or_else(Utc::now), json.json)
        }
        IncidentCommand::Facts { state, id, file } => {
            let text =
                read_bounded(&file).with_context(|| format!("reading {}", file.display()))?;
            let facts: OperatorFacts = serde_json::from_str(&text)
                .with_context(|| format!("operator facts {}", file.display()))?;
            Engine::open(&state.state)?.set_facts(&id, facts, Utc::now())?;
            println!("facts recorded for {id}");
        }
        IncidentCommand::Classify {
            state,
            id,
            at,
            json,
        } => {
            let mut engine = Engine::open(&state.state)?;
            let c = engine.classify(&id, at.unwrap_or_else(Utc::now))?;
            if json.json {
                print_json(&c)?;
            } else {
                print_classification(&c);
            }
        }
        IncidentCommand::Sent {
            state,
            id,
            stage,
            at,
        } => {
            let stage = parse_stage(&stage)?;
            Engine::open(&state.state)?.mark_sent(&id, stage, at.unwrap_or_else(Utc::now))?;
            println!("{} recorded as sent for {id}", stage.name());
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Exits 1 when any report is overdue, for cron and monitoring.
fn cmd_incident_list(state: &Path, now: DateTime<Utc>, json: bool) -> anyhow::Result<ExitCode> {
    let engine = Engine::open(state)?;
    let mut overdue_any = false;
    let mut rows = Vec::new();
    for i in &engine.tracker.incidents {
        let d = match engine.deadlines(i) {
            Some(Err(e)) => bail!("incident {}: {e}", i.id),
            Some(Ok(d)) => Some(d),
            None => None,
        };
        let overdue = engine.overdue(i, now);
        overdue_any |= !overdue.is_empty();
        rows.push((i, d, overdue));
    }
    if json {
        let value: Vec<serde_json::Value> = rows
            .iter()
            .map(|(i, d, o)| json!({"incident": i, "deadlines": d, "overdue": o}))
            .collect();
        print_json(&value)?;
    } else if rows.is_empty() {
        println!("no incidents");
    }
    for (i, d, overdue) in rows.iter().filter(|_| !json) {
        let major = if i.is_major() { "major" } else { "not major" };
        println!(
            "{}  {:?}  detected {}  {major}",
            i.id,
            i.status,
            deadlines::rfc3339(i.detected_at)
        );
        if let Some(d) = d {
            println!(
                "    due: initial {}, intermediate {}, final {}",
                d.initial_due, d.intermediate_due, d.final_due
            );
        }
        for a in overdue {
            println!("    OVERDUE: {}", a.message);
        }
    }
    Ok(if overdue_any {
        ExitCode::from(crate::EXIT_FOUND)
    } else {
        ExitCode::SUCCESS
    })
}

fn cmd_report(
    state: &Path,
    id: &str,
    stage: &str,
    inputs: Option<&Path>,
    html: Option<&Path>,
    json: bool,
) -> anyhow::Result<ExitCode> {
    let stage = parse_stage(stage)?;
    let engine = Engine::open(state)?;
    let profile = engine.config.profile.clone().context(
        "no entity profile in config.json (profile: name, lei, entity_types, primary_contact)",
    )?;
    let inputs: ReportInputs = match inputs {
        Some(p) => read_json(p)?,
        None => ReportInputs::default(),
    };
    let incident = engine
        .tracker
        .get(id)
        .with_context(|| format!("no incident {id:?}"))?;
    let report = match report::build(stage, incident, &profile, &inputs, Utc::now()) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(crate::EXIT_FOUND));
        }
    };
    engine.audit(Utc::now(), "report", id, report.json.clone())?;
    if let Some(path) = html {
        std::fs::write(path, report::to_html(&report))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    if json {
        print_json(&report.json)?;
    } else {
        println!(
            "{} report for {id} built, valid against the shipped schema, and audited{}; print it with --json",
            stage.name(),
            html.map(|p| format!(", HTML written to {}", p.display()))
                .unwrap_or_default()
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `ID=HOST:PORT` of `--control`.
fn parse_control(text: &str) -> Result<(u32, String), String> {
    let (id, addr) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?}: expected ID=HOST:PORT"))?;
    let id = id
        .parse()
        .map_err(|_| format!("{id:?} is not a replica id"))?;
    addr.parse::<std::net::SocketAddr>()
        .map_err(|_| format!("{addr:?} is not HOST:PORT"))?;
    Ok((id, addr.to_string()))
}
