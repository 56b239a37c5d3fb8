//! The register of information as supervisors take it: an EBA plain-csv (xBRL-CSV) report
//! package on the EBA taxonomy 4.0 DORA module, and a local validator for such packages.
//!
//! Layout (XBRL report package 2023 with an xBRL-CSV report, as the EBA's DORA guidance
//! describes it): a ZIP with one top folder named
//! `{LEI}.{IND|CON}_{CC}_DORA010100_DORA_{reference date}_{creation timestamp}`, holding
//! `META-INF/reportPackage.json` and `reports/` with `report.json` (extends the taxonomy entry
//! point [`ENTRY_POINT`]), `parameters.csv`, `FilingIndicators.csv` and one `b_XX.XX.csv` per
//! reported template, headed by the column codes.
//!
//! Column codes, mandatory columns and the `eba_*` member codes follow open-source
//! transcriptions of the EBA data point model for DORA 4.0 and of its validation rules
//! (tools/dora/README.md, "Register of information as an xBRL-CSV package", lists them and
//! what could not be checked against the taxonomy package itself).

use crate::codes::{check_lei, is_country, is_currency};
use crate::register::RegisterConfig;
use ccbft_core::topology::Topology;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::Path;

/// The EBA taxonomy 4.0 DORA module entry point that `report.json` extends.
pub const ENTRY_POINT: &str = "http://www.eba.europa.eu/eu/fr/xbrl/crr/fws/dora/4.0/mod/dora.json";
pub const XBRL_CSV_DOCUMENT_TYPE: &str = "https://xbrl.org/2021/xbrl-csv";
pub const PACKAGE_DOCUMENT_TYPE: &str = "https://xbrl.org/report-package/2023";
/// Module code and framework in the EBA file-naming convention.
pub const MODULE: &str = "DORA010100";
/// Largest package read by the validator (a register is small).
pub const PACKAGE_BYTES_MAX: u64 = 64 * 1024 * 1024;
/// Most files in a package.
pub const PACKAGE_FILES_MAX: usize = 64;

/// Every template of 2024/2956 that FilingIndicators.csv declares.
pub const ALL_TEMPLATES: [&str; 15] = [
    "B_01.01", "B_01.02", "B_01.03", "B_02.01", "B_02.02", "B_02.03", "B_03.01", "B_03.02",
    "B_03.03", "B_04.01", "B_05.01", "B_05.02", "B_06.01", "B_07.01", "B_99.01",
];

/// A column's value type.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Col {
    Text,
    Lei,
    /// `eba_GA:` + ISO 3166-1 alpha-2.
    Country,
    /// `eba_CU:` + ISO 4217.
    Currency,
    Date,
    Monetary,
    Integer,
    Code(&'static [&'static str]),
    /// A code whose member list could not be retrieved: only the domain prefix is checked.
    Prefixed(&'static str),
}

/// One column: code, name, type, mandatory.
pub type Column = (&'static str, &'static str, Col, bool);

pub const ENTITY_TYPES: [&str; 22] = [
    "eba_CT:x12",
    "eba_CT:x300",
    "eba_CT:x301",
    "eba_CT:x302",
    "eba_CT:x303",
    "eba_CT:x304",
    "eba_CT:x305",
    "eba_CT:x306",
    "eba_CT:x307",
    "eba_CT:x308",
    "eba_CT:x309",
    "eba_CT:x310",
    "eba_CT:x311",
    "eba_CT:x312",
    "eba_CT:x313",
    "eba_CT:x314",
    "eba_CT:x315",
    "eba_CT:x316",
    "eba_CT:x320",
    "eba_CT:x599",
    "eba_CT:x639",
    "eba_CT:x643",
];
pub const ARRANGEMENT: [&str; 3] = ["eba_CO:x1", "eba_CO:x2", "eba_CO:x3"];
pub const TERMINATION: [&str; 6] = [
    "eba_CO:x4",
    "eba_CO:x5",
    "eba_CO:x6",
    "eba_CO:x7",
    "eba_CO:x8",
    "eba_CO:x9",
];
pub const CODE_TYPES: [&str; 2] = ["eba_qCO:qx2000", "eba_qCO:qx2002"];
pub const PERSON: [&str; 2] = ["eba_CT:x212", "eba_CT:x213"];
pub const YES_NO: [&str; 2] = ["eba_BT:x28", "eba_BT:x29"];
pub const BRANCH: [&str; 2] = ["eba_ZZ:x838", "eba_ZZ:x839"];
pub const LEVEL: [&str; 3] = ["eba_ZZ:x791", "eba_ZZ:x792", "eba_ZZ:x793"];
pub const IMPACT: [&str; 4] = ["eba_ZZ:x791", "eba_ZZ:x792", "eba_ZZ:x793", "eba_ZZ:x799"];
pub const RELIANCE: [&str; 4] = ["eba_ZZ:x794", "eba_ZZ:x795", "eba_ZZ:x796", "eba_ZZ:x797"];
pub const SUBSTITUTABILITY: [&str; 4] =
    ["eba_ZZ:x959", "eba_ZZ:x960", "eba_ZZ:x961", "eba_ZZ:x962"];
pub const SUBSTITUTION_REASON: [&str; 3] = ["eba_ZZ:x963", "eba_ZZ:x964", "eba_ZZ:x965"];
pub const REINTEGRATION: [&str; 3] = ["eba_ZZ:x798", "eba_ZZ:x966", "eba_ZZ:x967"];
pub const ICT_SERVICES: [&str; 19] = [
    "eba_TA:S01",
    "eba_TA:S02",
    "eba_TA:S03",
    "eba_TA:S04",
    "eba_TA:S05",
    "eba_TA:S06",
    "eba_TA:S07",
    "eba_TA:S08",
    "eba_TA:S09",
    "eba_TA:S10",
    "eba_TA:S11",
    "eba_TA:S12",
    "eba_TA:S13",
    "eba_TA:S14",
    "eba_TA:S15",
    "eba_TA:S16",
    "eba_TA:S17",
    "eba_TA:S18",
    "eba_TA:S19",
];

use Col::*;

/// The templates the engine fills, with their columns.
pub const TEMPLATES: [(&str, &[Column]); 8] = [
    ("B_01.01", &[
        ("c0010", "LEI of the entity maintaining the register of information", Lei, true),
        ("c0020", "Name of the entity", Text, true),
        ("c0030", "Country of the entity", Country, true),
        ("c0040", "Type of entity", Code(&ENTITY_TYPES), true),
        ("c0050", "Competent authority", Text, true),
        ("c0060", "Date of the reporting", Date, true),
    ]),
    ("B_02.01", &[
        ("c0010", "Contractual arrangement reference number", Text, true),
        ("c0020", "Type of contractual arrangement", Code(&ARRANGEMENT), true),
        ("c0030", "Overarching contractual arrangement reference number", Text, false),
        ("c0040", "Currency of the amount reported", Currency, true),
        ("c0050", "Annual expense or estimated cost of the contractual arrangement for the past year", Monetary, true),
    ]),
    ("B_02.02", &[
        ("c0010", "Contractual arrangement reference number", Text, true),
        ("c0020", "LEI of the financial entity making use of the ICT service", Lei, true),
        ("c0030", "Identification code of the ICT third-party service provider", Text, true),
        ("c0040", "Type of code to identify the ICT third-party service provider", Code(&CODE_TYPES), true),
        ("c0050", "Function identifier", Text, true),
        ("c0060", "Type of ICT services", Code(&ICT_SERVICES), true),
        ("c0070", "Start date of the contractual arrangement", Date, true),
        ("c0080", "End date of the contractual arrangement", Date, true),
        ("c0090", "Reason of the termination or ending of the contractual arrangement", Code(&TERMINATION), false),
        ("c0100", "Notice period for the financial entity", Integer, false),
        ("c0110", "Notice period for the ICT third-party service provider", Integer, false),
        ("c0120", "Country of the governing law of the contractual arrangement", Country, false),
        ("c0130", "Country of provision of the ICT services", Country, false),
        ("c0140", "Storage of data", Code(&YES_NO), false),
        ("c0150", "Location of the data at rest (storage)", Country, false),
        ("c0160", "Location of management of the data (processing)", Country, false),
        ("c0170", "Sensitiveness of the data stored by the ICT third-party service provider", Code(&LEVEL), false),
        ("c0180", "Level of reliance on the ICT service supporting the critical or important function", Code(&RELIANCE), false),
    ]),
    ("B_04.01", &[
        ("c0010", "Contractual arrangement reference number", Text, true),
        ("c0020", "LEI of the financial entity making use of the ICT service", Lei, true),
        ("c0030", "Is the entity making use of the ICT services a branch of a financial entity?", Code(&BRANCH), true),
        ("c0040", "Identification code of the branch", Text, false),
    ]),
    ("B_05.01", &[
        ("c0010", "Identification code of the ICT third-party service provider", Text, true),
        ("c0020", "Type of code to identify the ICT third-party service provider", Code(&CODE_TYPES), true),
        ("c0030", "Additional identification code of the ICT third-party service provider", Text, false),
        ("c0040", "Type of additional identification code", Code(&CODE_TYPES), false),
        ("c0050", "Legal name of the ICT third-party service provider", Text, true),
        ("c0060", "Name of the ICT third-party service provider in Latin alphabet", Text, true),
        ("c0070", "Type of person of the ICT third-party service provider", Code(&PERSON), true),
        ("c0080", "Country of the ICT third-party service provider's headquarters", Country, true),
        ("c0090", "Currency of the amount reported", Currency, false),
        ("c0100", "Total annual expense or estimated cost of the ICT third-party service provider", Monetary, false),
        ("c0110", "Identification code of the ICT third-party service provider's ultimate parent undertaking", Text, true),
        ("c0120", "Type of code of the ultimate parent undertaking", Code(&CODE_TYPES), false),
    ]),
    ("B_05.02", &[
        ("c0010", "Contractual arrangement reference number", Text, true),
        ("c0020", "Type of ICT services", Code(&ICT_SERVICES), true),
        ("c0030", "Identification code of the ICT third-party service provider", Text, true),
        ("c0040", "Type of code to identify the ICT third-party service provider", Code(&CODE_TYPES), true),
        ("c0050", "Rank", Integer, true),
        ("c0060", "Identification code of the recipient of sub-contracted ICT services", Text, false),
        ("c0070", "Type of code of the recipient of sub-contracted ICT services", Code(&CODE_TYPES), false),
    ]),
    ("B_06.01", &[
        ("c0010", "Function identifier", Text, true),
        ("c0020", "Licensed activity", Prefixed("eba_TA:"), true),
        ("c0030", "Function name", Text, true),
        ("c0040", "LEI of the financial entity", Lei, true),
        ("c0050", "Criticality or importance assessment", Code(&YES_NO), true),
        ("c0060", "Reasons for criticality or importance", Text, false),
        ("c0070", "Date of the last assessment of criticality or importance", Date, true),
        ("c0080", "Recovery time objective of the function (hours)", Integer, true),
        ("c0090", "Recovery point objective of the function (hours)", Integer, true),
        ("c0100", "Impact of discontinuing the function", Code(&IMPACT), true),
    ]),
    ("B_07.01", &[
        ("c0010", "Contractual arrangement reference number", Text, true),
        ("c0020", "Identification code of the ICT third-party service provider", Text, true),
        ("c0030", "Type of code to identify the ICT third-party service provider", Code(&CODE_TYPES), true),
        ("c0040", "Type of ICT services", Code(&ICT_SERVICES), true),
        ("c0050", "Substitutability of the ICT third-party service provider", Code(&SUBSTITUTABILITY), true),
        ("c0060", "Reason if the ICT third-party service provider is considered not substitutable or difficult to be substitutable", Code(&SUBSTITUTION_REASON), false),
        ("c0070", "Date of the last audit on the ICT third-party service provider", Date, true),
        ("c0080", "Existence of an exit plan", Code(&YES_NO), true),
        ("c0090", "Possibility of reintegration of the contracted ICT service", Code(&REINTEGRATION), true),
        ("c0100", "Impact of discontinuing the ICT services", Code(&IMPACT), true),
        ("c0110", "Are there alternative ICT third-party service providers identified?", Code(&YES_NO), true),
        ("c0120", "Identification of alternative ICT TPP", Text, false),
    ]),
];

/// References between templates: (template, column) values must be defined in
/// (template, column).
/// A (template, column) cell position.
pub type At = (&'static str, &'static str);

pub const REFERENCES: [(At, At); 11] = [
    (("B_02.01", "c0030"), ("B_02.01", "c0010")),
    (("B_02.02", "c0010"), ("B_02.01", "c0010")),
    (("B_04.01", "c0010"), ("B_02.01", "c0010")),
    (("B_05.02", "c0010"), ("B_02.01", "c0010")),
    (("B_07.01", "c0010"), ("B_02.01", "c0010")),
    (("B_02.02", "c0030"), ("B_05.01", "c0010")),
    (("B_05.02", "c0030"), ("B_05.01", "c0010")),
    (("B_05.02", "c0060"), ("B_05.01", "c0010")),
    (("B_07.01", "c0020"), ("B_05.01", "c0010")),
    (("B_02.02", "c0050"), ("B_06.01", "c0010")),
    (("B_02.02", "c0020"), ("B_01.01", "c0010")),
];

#[derive(Debug, thiserror::Error)]
pub enum XbrlError {
    #[error("register package: {0}")]
    Config(String),
    #[error("{path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("{path} is not a readable ZIP: {message}")]
    Zip { path: String, message: String },
}

/// Package-level facts the topology cannot give (operator configuration, `xbrl` key of the
/// register configuration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XbrlConfig {
    /// ISO 3166-1 alpha-2 country of the entity maintaining the register.
    pub country: String,
    /// `eba_CT:` code of the entity type (B_01.01 c0040), e.g. `eba_CT:x12` for a credit
    /// institution.
    pub entity_type: String,
    pub competent_authority: String,
    pub reference_date: NaiveDate,
    pub reporting_date: NaiveDate,
    /// IND (individual) or CON (consolidated).
    pub consolidation: String,
    /// ISO 4217 currency of the amounts.
    pub currency: String,
    /// `eba_TA:` code of the licensed activity the function belongs to (B_06.01 c0020).
    pub licensed_activity: String,
    /// Function identifier of B_06.01: `F` and a natural number.
    pub function_identifier: String,
    pub function_last_assessment: NaiveDate,
    pub function_reasons: Option<String>,
    pub function_rto_hours: u32,
    pub function_rpo_hours: u32,
    /// low, medium, high (B_06.01 c0100).
    pub function_discontinuing_impact: String,
    pub providers: BTreeMap<String, XbrlProvider>,
}

/// Per-provider contract and assessment facts (keyed like the topology's provider names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct XbrlProvider {
    /// Annual expense in units of the configured currency.
    pub annual_expense: u64,
    pub start_date: NaiveDate,
    /// 9999-12-31 for an open-ended arrangement.
    pub end_date: NaiveDate,
    /// not_substitutable, highly_complex, medium_complexity, easy.
    pub substitutability: String,
    /// no_alternatives, migration_difficulties, both (required when not easily substitutable).
    pub substitutability_reason: Option<String>,
    pub last_audit: NaiveDate,
    pub exit_plan: bool,
    /// easy, difficult, highly_complex.
    pub reintegration: String,
    /// low, medium, high.
    pub discontinuing_impact: String,
    pub alternatives_identified: bool,
    pub alternatives: Option<String>,
    /// Countries of data storage and processing, when data is stored.
    pub data_location: Option<String>,
    /// low, medium, high.
    pub data_sensitivity: Option<String>,
    /// not_significant, low, material, full.
    pub reliance: Option<String>,
}

/// A package in memory: its top folder name and the files under it.
#[derive(Debug, Clone, PartialEq)]
pub struct Package {
    pub name: String,
    /// Paths relative to the top folder.
    pub files: BTreeMap<String, String>,
}

fn pick(list: &[(&str, &'static str)], name: &str, what: &str) -> Result<&'static str, XbrlError> {
    list.iter()
        .find(|(n, _)| *n == name)
        .map(|(_, c)| *c)
        .ok_or_else(|| {
            let names: Vec<&str> = list.iter().map(|(n, _)| *n).collect();
            XbrlError::Config(format!(
                "{what} {name:?} is not one of {}",
                names.join(", ")
            ))
        })
}

const LEVELS: [(&str, &str); 3] = [("low", LEVEL[0]), ("medium", LEVEL[1]), ("high", LEVEL[2])];
const SUBST: [(&str, &str); 4] = [
    ("not_substitutable", SUBSTITUTABILITY[0]),
    ("highly_complex", SUBSTITUTABILITY[1]),
    ("medium_complexity", SUBSTITUTABILITY[2]),
    ("easy", SUBSTITUTABILITY[3]),
];
const SUBST_REASON: [(&str, &str); 3] = [
    ("no_alternatives", SUBSTITUTION_REASON[0]),
    ("migration_difficulties", SUBSTITUTION_REASON[1]),
    ("both", SUBSTITUTION_REASON[2]),
];
const REINT: [(&str, &str); 3] = [
    ("easy", REINTEGRATION[0]),
    ("difficult", REINTEGRATION[1]),
    ("highly_complex", REINTEGRATION[2]),
];
const RELY: [(&str, &str); 4] = [
    ("not_significant", RELIANCE[0]),
    ("low", RELIANCE[1]),
    ("material", RELIANCE[2]),
    ("full", RELIANCE[3]),
];

fn yes_no(b: bool) -> String {
    if b { YES_NO[0] } else { YES_NO[1] }.to_string()
}

/// The conventional package name.
pub fn package_name(lei: &str, x: &XbrlConfig, created: DateTime<Utc>) -> String {
    format!(
        "{lei}.{}_{}_{MODULE}_DORA_{}_{}",
        x.consolidation,
        x.country,
        x.reference_date.format("%Y-%m-%d"),
        created.format("%Y%m%d%H%M%S%3f")
    )
}

/// Build the package for a topology and its register configuration.
pub fn package(
    topology: &Topology,
    config: &RegisterConfig,
    created: DateTime<Utc>,
) -> Result<Package, XbrlError> {
    let x = config
        .xbrl
        .as_ref()
        .ok_or_else(|| XbrlError::Config("the register configuration has no \"xbrl\" section (country, entity_type, reference_date, ...)".into()))?;
    let lei = config
        .entity_lei
        .clone()
        .ok_or_else(|| XbrlError::Config("entity_lei is missing".into()))?;
    let name = config
        .entity_name
        .clone()
        .ok_or_else(|| XbrlError::Config("entity_name is missing".into()))?;
    let mut tables: BTreeMap<&str, Vec<Vec<String>>> = BTreeMap::new();
    tables.insert(
        "B_01.01",
        vec![vec![
            lei.clone(),
            name,
            format!("eba_GA:{}", x.country),
            x.entity_type.clone(),
            x.competent_authority.clone(),
            x.reporting_date.to_string(),
        ]],
    );
    for provider in topology.providers() {
        provider_rows(&mut tables, &provider, &lei, config, x)?;
    }
    tables.insert(
        "B_06.01",
        vec![vec![
            x.function_identifier.clone(),
            x.licensed_activity.clone(),
            config.function.name.clone(),
            lei.clone(),
            yes_no(config.function.critical_or_important),
            x.function_reasons.clone().unwrap_or_default(),
            x.function_last_assessment.to_string(),
            x.function_rto_hours.to_string(),
            x.function_rpo_hours.to_string(),
            pick(
                &LEVELS,
                &x.function_discontinuing_impact,
                "function_discontinuing_impact",
            )?
            .into(),
        ]],
    );
    let mut files = BTreeMap::new();
    files.insert(
        "META-INF/reportPackage.json".to_string(),
        format!("{{\n  \"documentInfo\": {{\n    \"documentType\": \"{PACKAGE_DOCUMENT_TYPE}\"\n  }}\n}}\n"),
    );
    files.insert(
        "reports/report.json".to_string(),
        format!("{{\n  \"documentInfo\": {{\n    \"documentType\": \"{XBRL_CSV_DOCUMENT_TYPE}\",\n    \"extends\": [\n      \"{ENTRY_POINT}\"\n    ]\n  }}\n}}\n"),
    );
    files.insert(
        "reports/parameters.csv".to_string(),
        csv(&[
            row(&["name", "value"]),
            row(&["entityID", &format!("rs:{lei}.{}", x.consolidation)]),
            row(&["refPeriod", &x.reference_date.to_string()]),
            row(&["baseCurrency", &format!("iso4217:{}", x.currency)]),
            row(&["decimalsInteger", "0"]),
            row(&["decimalsMonetary", "-3"]),
        ]),
    );
    let mut indicators = vec![row(&["templateID", "reported"])];
    for t in ALL_TEMPLATES {
        let reported = tables.contains_key(t);
        indicators.push(row(&[t, if reported { "true" } else { "false" }]));
    }
    files.insert("reports/FilingIndicators.csv".to_string(), csv(&indicators));
    for (template, columns) in TEMPLATES.iter() {
        let mut rows = vec![columns.iter().map(|c| c.0.to_string()).collect()];
        rows.extend(tables.remove(template).unwrap_or_default());
        files.insert(
            format!("reports/{}.csv", template.to_lowercase()),
            csv(&rows),
        );
    }
    let package = Package {
        name: package_name(&lei, x, created),
        files,
    };
    // Refuse to write what the validator would refuse.
    let findings = validate_package(&package);
    if let Some(first) = findings.first() {
        return Err(XbrlError::Config(format!(
            "the package would be refused ({} findings), first: {first}",
            findings.len()
        )));
    }
    Ok(package)
}

fn row(cells: &[&str]) -> Vec<String> {
    cells.iter().map(|c| c.to_string()).collect()
}

fn provider_rows(
    tables: &mut BTreeMap<&'static str, Vec<Vec<String>>>,
    provider: &str,
    lei: &str,
    config: &RegisterConfig,
    x: &XbrlConfig,
) -> Result<(), XbrlError> {
    let missing = |what: &str| XbrlError::Config(format!("provider {provider}: {what} is missing"));
    let info = config
        .providers
        .get(provider)
        .ok_or_else(|| missing("register entry"))?;
    let p = x
        .providers
        .get(provider)
        .ok_or_else(|| missing("xbrl.providers entry"))?;
    let code = info
        .identification_code
        .clone()
        .ok_or_else(|| missing("identification_code"))?;
    let contract = info
        .contract_reference
        .clone()
        .ok_or_else(|| missing("contract_reference"))?;
    let legal = info
        .legal_name
        .clone()
        .ok_or_else(|| missing("legal_name"))?;
    let hq = info
        .headquarters_country
        .clone()
        .ok_or_else(|| missing("headquarters_country"))?;
    let service = info
        .ict_service_type
        .clone()
        .ok_or_else(|| missing("ict_service_type"))?;
    let service = format!("eba_TA:{service}");
    let code_type = match info.code_type.as_deref().unwrap_or("LEI") {
        "LEI" => CODE_TYPES[0],
        "EUID" => CODE_TYPES[1],
        other => {
            return Err(XbrlError::Config(format!(
                "provider {provider}: code_type {other:?} is not LEI or EUID"
            )))
        }
    };
    let parent = info
        .ultimate_parent_code
        .clone()
        .unwrap_or_else(|| code.clone());
    let push =
        |tables: &mut BTreeMap<&'static str, Vec<Vec<String>>>, t: &'static str, r: Vec<String>| {
            tables.entry(t).or_default().push(r);
        };
    push(
        tables,
        "B_02.01",
        vec![
            contract.clone(),
            ARRANGEMENT[0].into(),
            String::new(),
            format!("eba_CU:{}", x.currency),
            p.annual_expense.to_string(),
        ],
    );
    let loc = p
        .data_location
        .clone()
        .map(|c| format!("eba_GA:{c}"))
        .unwrap_or_default();
    let sensitivity = match &p.data_sensitivity {
        Some(s) => pick(&LEVELS, s, "data_sensitivity")?.to_string(),
        None => String::new(),
    };
    let reliance = match &p.reliance {
        Some(s) => pick(&RELY, s, "reliance")?.to_string(),
        None => String::new(),
    };
    push(
        tables,
        "B_02.02",
        vec![
            contract.clone(),
            lei.into(),
            code.clone(),
            code_type.into(),
            x.function_identifier.clone(),
            service.clone(),
            p.start_date.to_string(),
            p.end_date.to_string(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            yes_no(p.data_location.is_some()),
            loc.clone(),
            loc,
            sensitivity,
            reliance,
        ],
    );
    push(
        tables,
        "B_04.01",
        vec![
            contract.clone(),
            lei.into(),
            BRANCH[1].into(),
            String::new(),
        ],
    );
    push(
        tables,
        "B_05.01",
        vec![
            code.clone(),
            code_type.into(),
            String::new(),
            String::new(),
            legal.clone(),
            legal,
            PERSON[0].into(),
            format!("eba_GA:{hq}"),
            format!("eba_CU:{}", x.currency),
            p.annual_expense.to_string(),
            parent,
            code_type.into(),
        ],
    );
    push(
        tables,
        "B_05.02",
        vec![
            contract.clone(),
            service.clone(),
            code.clone(),
            code_type.into(),
            "1".into(),
            String::new(),
            String::new(),
        ],
    );
    let reason = match &p.substitutability_reason {
        Some(r) => pick(&SUBST_REASON, r, "substitutability_reason")?.to_string(),
        None => String::new(),
    };
    push(
        tables,
        "B_07.01",
        vec![
            contract,
            code,
            code_type.into(),
            service,
            pick(&SUBST, &p.substitutability, "substitutability")?.into(),
            reason,
            p.last_audit.to_string(),
            yes_no(p.exit_plan),
            pick(&REINT, &p.reintegration, "reintegration")?.into(),
            pick(&LEVELS, &p.discontinuing_impact, "discontinuing_impact")?.into(),
            yes_no(p.alternatives_identified),
            p.alternatives.clone().unwrap_or_default(),
        ],
    );
    Ok(())
}

/// RFC 4180 CSV with CRLF line ends.
fn csv(rows: &[Vec<String>]) -> String {
    let mut out = String::new();
    for r in rows {
        let cells: Vec<String> = r
            .iter()
            .map(|c| {
                if c.contains([',', '"', '\n', '\r']) {
                    format!("\"{}\"", c.replace('"', "\"\""))
                } else {
                    c.clone()
                }
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push_str("\r\n");
    }
    out
}

/// Parse RFC 4180 CSV (quoted cells, doubled quotes, CRLF or LF).
pub fn parse_csv(text: &str) -> Result<Vec<Vec<String>>, String> {
    let mut rows = Vec::new();
    let mut row = Vec::new();
    let mut cell = String::new();
    let mut quoted = false;
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') if cell.is_empty() => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') if chars.peek() == Some(&'\n') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    if quoted {
        return Err("unterminated quoted cell".into());
    }
    if !cell.is_empty() || !row.is_empty() {
        row.push(cell);
        rows.push(row);
    }
    Ok(rows)
}

/// Write the package as a ZIP: temp file, fsync, rename (nothing half-written survives).
pub fn write_zip(package: &Package, path: &Path) -> Result<(), XbrlError> {
    let io = |e: std::io::Error| XbrlError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let zerr = |e: zip::result::ZipError| XbrlError::Zip {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let tmp = path.with_extension("zip.tmp");
    let file = std::fs::File::create(&tmp).map_err(io)?;
    let mut zip = zip::ZipWriter::new(file);
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for (rel, text) in &package.files {
        zip.start_file(format!("{}/{rel}", package.name), options)
            .map_err(zerr)?;
        zip.write_all(text.as_bytes()).map_err(io)?;
    }
    let file = zip.finish().map_err(zerr)?;
    file.sync_all().map_err(io)?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
    }
    Ok(())
}

/// Read a package ZIP: one top folder and its files (bounded in size and count).
pub fn read_zip(path: &Path) -> Result<Result<Package, Finding>, XbrlError> {
    let io = |e: std::io::Error| XbrlError::Io {
        path: path.display().to_string(),
        source: e,
    };
    let zerr = |e: zip::result::ZipError| XbrlError::Zip {
        path: path.display().to_string(),
        message: e.to_string(),
    };
    let meta = std::fs::metadata(path).map_err(io)?;
    if meta.len() > PACKAGE_BYTES_MAX {
        return Ok(Err(Finding::new(
            "package",
            format!(
                "{} bytes, more than the {PACKAGE_BYTES_MAX} accepted",
                meta.len()
            ),
        )));
    }
    let mut zip = zip::ZipArchive::new(std::fs::File::open(path).map_err(io)?).map_err(zerr)?;
    if zip.len() > PACKAGE_FILES_MAX {
        return Ok(Err(Finding::new(
            "package",
            format!("{} entries, more than {PACKAGE_FILES_MAX}", zip.len()),
        )));
    }
    let mut tops = BTreeSet::new();
    let mut files = BTreeMap::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(zerr)?;
        let name = entry.name().map_err(zerr)?.to_string();
        if entry.is_dir() {
            continue;
        }
        let Some((top, rel)) = name.split_once('/') else {
            return Ok(Err(Finding::new(
                &name,
                "file outside the package's top folder",
            )));
        };
        tops.insert(top.to_string());
        let mut text = String::new();
        let limit = PACKAGE_BYTES_MAX;
        (&mut entry)
            .take(limit)
            .read_to_string(&mut text)
            .map_err(|e| XbrlError::Zip {
                path: path.display().to_string(),
                message: format!("{name}: {e}"),
            })?;
        files.insert(rel.to_string(), text);
    }
    if tops.len() != 1 {
        return Ok(Err(Finding::new(
            "package",
            format!(
                "must hold exactly one top folder, holds {}: {:?}",
                tops.len(),
                tops
            ),
        )));
    }
    let name = tops.into_iter().next().unwrap_or_default();
    Ok(Ok(Package { name, files }))
}

/// One reason a package would be refused, with where.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    pub at: String,
    pub message: String,
}

impl Finding {
    fn new(at: &str, message: impl Into<String>) -> Finding {
        Finding {
            at: at.into(),
            message: message.into(),
        }
    }
}

impl std::fmt::Display for Finding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.at, self.message)
    }
}

/// Validate a package ZIP; an empty list means accepted.
pub fn validate_zip(path: &Path) -> Result<Vec<Finding>, XbrlError> {
    Ok(match read_zip(path)? {
        Ok(package) => validate_package(&package),
        Err(finding) => vec![finding],
    })
}

/// Everything checkable locally.
pub fn validate_package(p: &Package) -> Vec<Finding> {
    let mut out = Vec::new();
    let params = check_structure(p, &mut out);
    let tables = check_templates(p, &mut out);
    check_filing_indicators(p, &tables, &mut out);
    check_references(&tables, &mut out);
    if let Some((lei, scope, date)) = params {
        check_name(&p.name, &lei, &scope, &date, &mut out);
        if let Some(b0101) = tables.get("B_01.01") {
            if b0101.iter().all(|r| r.get("c0010") != Some(&lei)) {
                out.push(Finding::new("reports/b_01.01.csv c0010", format!("the entity {lei} of parameters.csv is not the entity maintaining the register")));
            }
        }
    }
    out
}

/// A template's rows as column-code maps.
type Table = Vec<BTreeMap<String, String>>;

fn check_structure(p: &Package, out: &mut Vec<Finding>) -> Option<(String, String, String)> {
    let json_doc = |rel: &str, out: &mut Vec<Finding>| -> Option<serde_json::Value> {
        match p
            .files
            .get(rel)
            .map(|t| serde_json::from_str::<serde_json::Value>(t))
        {
            None => {
                out.push(Finding::new(rel, "is missing"));
                None
            }
            Some(Err(e)) => {
                out.push(Finding::new(rel, format!("is not JSON: {e}")));
                None
            }
            Some(Ok(v)) => Some(v),
        }
    };
    if let Some(v) = json_doc("META-INF/reportPackage.json", out) {
        if v["documentInfo"]["documentType"] != PACKAGE_DOCUMENT_TYPE {
            out.push(Finding::new(
                "META-INF/reportPackage.json",
                format!("documentInfo.documentType must be {PACKAGE_DOCUMENT_TYPE}"),
            ));
        }
    }
    if let Some(v) = json_doc("reports/report.json", out) {
        if v["documentInfo"]["documentType"] != XBRL_CSV_DOCUMENT_TYPE {
            out.push(Finding::new(
                "reports/report.json",
                format!("documentInfo.documentType must be {XBRL_CSV_DOCUMENT_TYPE}"),
            ));
        }
        if v["documentInfo"]["extends"] != serde_json::json!([ENTRY_POINT]) {
            out.push(Finding::new("reports/report.json", format!("documentInfo.extends must be [\"{ENTRY_POINT}\"] (EBA taxonomy 4.0 DORA entry point)")));
        }
    }
    for rel in p.files.keys() {
        let known = rel == "META-INF/reportPackage.json"
            || rel == "reports/report.json"
            || rel == "reports/parameters.csv"
            || rel == "reports/FilingIndicators.csv"
            || template_of(rel).is_some();
        if !known {
            out.push(Finding::new(rel, "is not part of a DORA plain-csv package"));
        }
    }
    check_parameters(p, out)
}

fn template_of(rel: &str) -> Option<&'static str> {
    TEMPLATES
        .iter()
        .map(|(t, _)| *t)
        .chain(ALL_TEMPLATES)
        .find(|t| rel == format!("reports/{}.csv", t.to_lowercase()))
}

fn check_parameters(p: &Package, out: &mut Vec<Finding>) -> Option<(String, String, String)> {
    let at = "reports/parameters.csv";
    let Some(text) = p.files.get(at) else {
        out.push(Finding::new(at, "is missing"));
        return None;
    };
    let rows = match parse_csv(text) {
        Ok(r) => r,
        Err(e) => {
            out.push(Finding::new(at, e));
            return None;
        }
    };
    let map: BTreeMap<&str, &str> = rows
        .iter()
        .skip(1)
        .filter(|r| r.len() == 2)
        .map(|r| (r[0].as_str(), r[1].as_str()))
        .collect();
    if rows.first().map(|h| h.join(",")) != Some("name,value".into()) {
        out.push(Finding::new(at, "header must be name,value"));
    }
    for key in [
        "entityID",
        "refPeriod",
        "baseCurrency",
        "decimalsInteger",
        "decimalsMonetary",
    ] {
        if !map.contains_key(key) {
            out.push(Finding::new(&format!("{at} {key}"), "is missing"));
        }
    }
    for key in ["decimalsInteger", "decimalsMonetary"] {
        if map.get(key).is_some_and(|v| v.parse::<i32>().is_err()) {
            out.push(Finding::new(&format!("{at} {key}"), "must be an integer"));
        }
    }
    if let Some(c) = map.get("baseCurrency") {
        if !c.strip_prefix("iso4217:").is_some_and(is_currency) {
            out.push(Finding::new(
                &format!("{at} baseCurrency"),
                format!("{c} is not iso4217:<ISO 4217 code>"),
            ));
        }
    }
    let date = map.get("refPeriod").copied().unwrap_or_default();
    if NaiveDate::parse_from_str(date, "%Y-%m-%d").is_err() {
        out.push(Finding::new(
            &format!("{at} refPeriod"),
            format!("{date:?} is not a date YYYY-MM-DD"),
        ));
    }
    let id = map.get("entityID").copied().unwrap_or_default();
    let Some((lei, scope)) = id.strip_prefix("rs:").and_then(|r| r.split_once('.')) else {
        out.push(Finding::new(
            &format!("{at} entityID"),
            format!("{id:?} is not rs:<LEI>.IND or rs:<LEI>.CON"),
        ));
        return None;
    };
    if let Err(e) = check_lei(lei) {
        out.push(Finding::new(&format!("{at} entityID"), e.to_string()));
    }
    if scope != "IND" && scope != "CON" {
        out.push(Finding::new(
            &format!("{at} entityID"),
            format!("scope {scope:?} is not IND or CON"),
        ));
    }
    Some((lei.to_string(), scope.to_string(), date.to_string()))
}

/// The top folder: `{LEI}.{IND|CON}_{CC}_DORA010100_DORA_{YYYY-MM-DD}_{YYYYMMDDhhmmssfff}`,
/// agreeing with parameters.csv.
fn check_name(name: &str, lei: &str, scope: &str, date: &str, out: &mut Vec<Finding>) {
    let at = format!("package folder {name:?}");
    let re = regex::Regex::new(
        r"^([A-Z0-9]{18}[0-9]{2})\.(IND|CON)_([A-Z]{2})_DORA010100_DORA_([0-9]{4}-[0-9]{2}-[0-9]{2})_([0-9]{17})$",
    );
    let Some(caps) = re.ok().and_then(|re| re.captures(name)) else {
        out.push(Finding::new(&at, "does not follow the EBA naming convention {LEI}.{IND|CON}_{country}_DORA010100_DORA_{reference date}_{creation timestamp YYYYMMDDhhmmssfff}"));
        return;
    };
    if &caps[1] != lei || &caps[2] != scope || &caps[4] != date {
        out.push(Finding::new(
            &at,
            format!(
                "names {}.{} for {}, parameters.csv says {lei}.{scope} for {date}",
                &caps[1], &caps[2], &caps[4]
            ),
        ));
    }
    if !is_country(&caps[3]) {
        out.push(Finding::new(
            &at,
            format!("{} is not an ISO 3166-1 alpha-2 country", &caps[3]),
        ));
    }
}

fn check_templates(p: &Package, out: &mut Vec<Finding>) -> BTreeMap<&'static str, Table> {
    let mut tables = BTreeMap::new();
    for (template, columns) in TEMPLATES.iter() {
        let rel = format!("reports/{}.csv", template.to_lowercase());
        let Some(text) = p.files.get(&rel) else {
            continue;
        };
        let rows = match parse_csv(text) {
            Ok(r) => r,
            Err(e) => {
                out.push(Finding::new(&rel, e));
                continue;
            }
        };
        let header: Vec<&str> = columns.iter().map(|c| c.0).collect();
        let got: Vec<&str> = rows
            .first()
            .map(|h| h.iter().map(String::as_str).collect())
            .unwrap_or_default();
        if got != header {
            out.push(Finding::new(
                &rel,
                format!(
                    "header must be {} (ITS 2024/2956 column codes), is {}",
                    header.join(","),
                    got.join(",")
                ),
            ));
            continue;
        }
        let mut table = Vec::new();
        for (i, r) in rows.iter().enumerate().skip(1) {
            if r.len() != header.len() {
                out.push(Finding::new(
                    &format!("{rel} row {i}"),
                    format!("has {} cells, the template {}", r.len(), header.len()),
                ));
                continue;
            }
            for (col, value) in columns.iter().zip(r) {
                check_cell(
                    &format!("{rel} row {i} {} ({})", col.0, col.1),
                    col,
                    value,
                    out,
                );
            }
            table.push(
                header
                    .iter()
                    .map(|h| h.to_string())
                    .zip(r.iter().cloned())
                    .collect(),
            );
        }
        tables.insert(*template, table);
    }
    tables
}

fn check_cell(at: &str, col: &Column, value: &str, out: &mut Vec<Finding>) {
    if value.is_empty() {
        if col.3 {
            out.push(Finding::new(at, "mandatory column is empty"));
        }
        return;
    }
    let bad = |m: String, out: &mut Vec<Finding>| out.push(Finding::new(at, m));
    match col.2 {
        Text => {}
        Lei => {
            if let Err(e) = check_lei(value) {
                bad(e.to_string(), out);
            }
        }
        Country => {
            if !value.strip_prefix("eba_GA:").is_some_and(is_country) {
                bad(
                    format!("{value} is not eba_GA:<ISO 3166-1 alpha-2 country>"),
                    out,
                );
            }
        }
        Currency => {
            if !value.strip_prefix("eba_CU:").is_some_and(is_currency) {
                bad(format!("{value} is not eba_CU:<ISO 4217 currency>"), out);
            }
        }
        Date => {
            if NaiveDate::parse_from_str(value, "%Y-%m-%d").is_err() {
                bad(format!("{value} is not a date YYYY-MM-DD"), out);
            }
        }
        Monetary | Integer => {
            if value.parse::<u64>().is_err() {
                bad(format!("{value} is not a non-negative whole number"), out);
            }
        }
        Code(list) => {
            if !list.contains(&value) {
                bad(
                    format!("{value} is not in the code list ({})", list.join(", ")),
                    out,
                );
            }
        }
        Prefixed(prefix) => {
            if !value.starts_with(prefix) || value.len() == prefix.len() {
                bad(format!("{value} is not a {prefix} code"), out);
            }
        }
    }
}

fn check_filing_indicators(
    p: &Package,
    tables: &BTreeMap<&'static str, Table>,
    out: &mut Vec<Finding>,
) {
    let at = "reports/FilingIndicators.csv";
    let Some(text) = p.files.get(at) else {
        out.push(Finding::new(at, "is missing"));
        return;
    };
    let rows = match parse_csv(text) {
        Ok(r) => r,
        Err(e) => return out.push(Finding::new(at, e)),
    };
    if rows.first().map(|h| h.join(",")) != Some("templateID,reported".into()) {
        out.push(Finding::new(at, "header must be templateID,reported"));
    }
    let mut declared = BTreeMap::new();
    for r in rows.iter().skip(1) {
        match (r.first(), r.get(1).map(String::as_str)) {
            (Some(t), Some(v @ ("true" | "false"))) if ALL_TEMPLATES.contains(&t.as_str()) => {
                if declared.insert(t.clone(), v == "true").is_some() {
                    out.push(Finding::new(at, format!("{t} is declared twice")));
                }
            }
            _ => out.push(Finding::new(
                at,
                format!("row {:?} is not <template>,true|false", r.join(",")),
            )),
        }
    }
    for t in ALL_TEMPLATES {
        let present = p
            .files
            .contains_key(&format!("reports/{}.csv", t.to_lowercase()));
        match declared.get(t) {
            None => out.push(Finding::new(
                at,
                format!("filing indicator for {t} is missing"),
            )),
            Some(true) if !present => out.push(Finding::new(
                at,
                format!(
                    "{t} is declared reported but reports/{}.csv is missing",
                    t.to_lowercase()
                ),
            )),
            Some(false) if present && tables.get(t).is_some_and(|rows| !rows.is_empty()) => out
                .push(Finding::new(
                    at,
                    format!("{t} has data but is declared not reported"),
                )),
            _ => {}
        }
    }
}

fn check_references(tables: &BTreeMap<&'static str, Table>, out: &mut Vec<Finding>) {
    for ((from_t, from_c), (to_t, to_c)) in REFERENCES {
        let defined: BTreeSet<&str> = tables
            .get(to_t)
            .map(|rows| {
                rows.iter()
                    .filter_map(|r| r.get(to_c).map(String::as_str))
                    .collect()
            })
            .unwrap_or_default();
        for (i, r) in tables
            .get(from_t)
            .map(Vec::as_slice)
            .unwrap_or(&[])
            .iter()
            .enumerate()
        {
            let Some(v) = r.get(from_c).filter(|v| !v.is_empty()) else {
                continue;
            };
            if !defined.contains(v.as_str()) {
                out.push(Finding::new(
                    &format!(
                        "reports/{}.csv row {} {from_c}",
                        from_t.to_lowercase(),
                        i + 1
                    ),
                    format!("{v} is not defined in {to_t} {to_c} (dangling reference)"),
                ));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_round_trip_with_quotes_and_commas() {
        let rows = vec![row(&["a", "b,c", "d \"e\""]), row(&["", "x"])];
        assert_eq!(parse_csv(&csv(&rows)).unwrap(), rows);
        assert!(parse_csv("\"open").is_err());
    }

    #[test]
    fn code_lists_hold_no_duplicates() {
        for (_, cols) in TEMPLATES.iter() {
            for c in cols.iter() {
                if let Code(list) = c.2 {
                    let set: BTreeSet<_> = list.iter().collect();
                    assert_eq!(set.len(), list.len(), "{}", c.0);
                }
            }
        }
    }
}
