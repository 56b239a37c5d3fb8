//! CC-BFT DORA compliance engine.
//!
//! Turns the cluster's own signals into the evidence that the Digital Operational Resilience
//! Act (Regulation (EU) 2022/2554, "DORA") asks for:
//!
//! - [`health`]: the health-event format the replica runtime emits (JSON Schema in
//!   `tools/dora/schema/health-event.schema.json`).
//! - [`incident`]: incidents opened and merged from health events, operator facts, recurring
//!   incidents (Art. 8(2) of Delegated Regulation (EU) 2024/1772).
//! - [`classify`]: classification criteria and materiality thresholds of Delegated
//!   Regulation (EU) 2024/1772 (Art. 1-9).
//! - [`deadlines`]: reporting time limits of Delegated Regulation (EU) 2025/301 (Art. 5).
//! - [`report`]: initial, intermediate and final reports with the data fields of Implementing
//!   Regulation (EU) 2025/302, validated against the shipped JSON Schema.
//! - [`annex2`]: the Annex II data glossary of 2025/302 (every field by number, stage and
//!   condition) and the report JSON Schema generated from it.
//! - [`codes`]: LEI check digits (ISO 17442), ISO 3166 and ISO 4217 codes.
//! - [`register`]: register of information (Implementing Regulation (EU) 2024/2956) and the
//!   concentration view (DORA Art. 28-29).
//! - [`export`]: SIEM/SOAR export (RFC 5424 syslog, CEF, JSON webhooks) through a persistent
//!   outbox.
//! - [`xbrl_csv`]: the register as an EBA plain-csv (xBRL-CSV) report package, and its
//!   local validator.
//! - [`resilience`]: resilience tests (DORA Art. 24-27) through the [`resilience::ResilienceTarget`]
//!   trait, evidence records, yearly plan and TLPT record.
//! - [`audit`]: the hash-chained, signed audit trail.
//! - [`dashboard`]: the HTML dashboard page and its data.
//! - [`server`]: the dashboard's HTTP server (control plane: limits, timeouts, bearer token).
//! - [`token`]: the bearer token of state-changing dashboard requests.
//! - [`state`]: the engine's state directory.
//! - [`threat`]: significant cyber threats (Art. 10 of 2024/1772).
//! - [`identifiers`]: LEI (ISO 17442) and country code (ISO 3166-1) checks.

/// Re-exported so that the CLI uses the same time types.
pub use chrono;

pub mod annex2;
pub mod audit;
pub mod classify;
pub mod codes;
pub mod dashboard;
pub mod deadlines;
pub mod export;
pub mod health;
pub mod html;
pub mod identifiers;
pub mod incident;
pub mod register;
pub mod report;
pub mod resilience;
pub mod schema;
pub mod server;
pub mod state;
pub mod threat;
pub mod token;
pub mod xbrl_csv;

/// Largest input file the engine reads (incident JSON, event files, configuration).
pub const INPUT_FILE_BYTES_MAX: u64 = 8 * 1024 * 1024;

/// Read a file no larger than [`INPUT_FILE_BYTES_MAX`].
pub fn read_bounded(path: &std::path::Path) -> Result<String, std::io::Error> {
    let meta = std::fs::metadata(path)?;
    if meta.len() > INPUT_FILE_BYTES_MAX {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!(
                "{} is {} bytes, more than the {} bytes accepted",
                path.display(),
                meta.len(),
                INPUT_FILE_BYTES_MAX
            ),
        ));
    }
    std::fs::read_to_string(path)
}
