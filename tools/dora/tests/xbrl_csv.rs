//! The register as an EBA plain-csv package: the committed example is reproduced and
//! accepted; each kind of defect is refused with a message naming it.

use ccbft_core::topology::Topology;
use ccbft_dora::chrono::{TimeZone, Utc};
use ccbft_dora::register::RegisterConfig;
use ccbft_dora::xbrl_csv::{
    package, parse_csv, validate_zip, write_zip, Package, ENTRY_POINT, TEMPLATES,
};
use std::path::{Path, PathBuf};

const NAME: &str = "5493001KJTIIGC8Y1R12.IND_DE_DORA010100_DORA_2026-03-31_20260415093000000";

fn repo(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../..")
        .join(rel)
}

fn example_package() -> Package {
    let topology = Topology::load(&repo("examples/three-clouds.toml")).unwrap();
    let text =
        std::fs::read_to_string(repo("tools/dora/docs/example/register-config.json")).unwrap();
    let config: RegisterConfig = serde_json::from_str(&text).unwrap();
    let created = Utc.with_ymd_and_hms(2026, 4, 15, 9, 30, 0).unwrap();
    package(&topology, &config, created).unwrap()
}

/// Write a (possibly damaged) package and return the validator's findings as text.
fn findings(p: &Package) -> Vec<String> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.zip");
    write_zip(p, &path).unwrap();
    validate_zip(&path)
        .unwrap()
        .iter()
        .map(ToString::to_string)
        .collect()
}

#[test]
fn the_committed_example_is_reproduced_and_accepted() {
    let p = example_package();
    assert_eq!(p.name, NAME);
    let committed = repo(&format!("tools/dora/docs/example/{NAME}.zip"));
    assert_eq!(validate_zip(&committed).unwrap(), vec![]);
    let dir = tempfile::tempdir().unwrap();
    let fresh = dir.path().join("fresh.zip");
    write_zip(&p, &fresh).unwrap();
    assert_eq!(
        std::fs::read(&fresh).unwrap(),
        std::fs::read(&committed).unwrap(),
        "regenerate the example: ccbft dora register --cluster examples/three-clouds.toml --config tools/dora/docs/example/register-config.json --xbrl-csv tools/dora/docs/example/{NAME}.zip --created 2026-04-15T09:30:00Z"
    );
}

#[test]
fn package_layout_metadata_and_one_csv_per_template() {
    let p = example_package();
    assert!(p.files["META-INF/reportPackage.json"].contains("https://xbrl.org/report-package/2023"));
    let report: serde_json::Value = serde_json::from_str(&p.files["reports/report.json"]).unwrap();
    assert_eq!(
        report["documentInfo"]["documentType"],
        "https://xbrl.org/2021/xbrl-csv"
    );
    assert_eq!(report["documentInfo"]["extends"][0], ENTRY_POINT);
    let params = parse_csv(&p.files["reports/parameters.csv"]).unwrap();
    let keys: Vec<&str> = params.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        keys,
        [
            "name",
            "entityID",
            "refPeriod",
            "baseCurrency",
            "decimalsInteger",
            "decimalsMonetary"
        ]
    );
    assert_eq!(params[1][1], "rs:5493001KJTIIGC8Y1R12.IND");
    for (template, columns) in TEMPLATES.iter() {
        let rows =
            parse_csv(&p.files[&format!("reports/{}.csv", template.to_lowercase())]).unwrap();
        let header: Vec<&str> = columns.iter().map(|c| c.0).collect();
        assert_eq!(rows[0], header, "{template}");
        let expected_rows = match *template {
            "B_01.01" | "B_06.01" => 1,
            _ => 3, // one per provider of the topology: aws, azure, gcp
        };
        assert_eq!(rows.len() - 1, expected_rows, "{template}");
    }
    let indicators = parse_csv(&p.files["reports/FilingIndicators.csv"]).unwrap();
    assert_eq!(indicators.len(), 16);
    assert!(indicators.contains(&vec!["B_05.01".to_string(), "true".to_string()]));
    assert!(indicators.contains(&vec!["B_03.01".to_string(), "false".to_string()]));
}

fn edit(p: &mut Package, rel: &str, from: &str, to: &str) {
    let text = p.files.get_mut(rel).unwrap();
    assert!(text.contains(from), "{rel} lacks {from}");
    *text = text.replacen(from, to, 1);
}

#[test]
fn each_defect_is_refused_with_a_message_naming_it() {
    // (defect, damage, what the message must name)
    type Damage = fn(&mut Package);
    let cases: [(&str, Damage, &[&str]); 6] = [
        (
            "bad LEI check digit",
            |p| {
                edit(
                    p,
                    "reports/b_02.02.csv",
                    "5493001KJTIIGC8Y1R12",
                    "5493001KJTIIGC8Y1R13",
                )
            },
            &["reports/b_02.02.csv row 1 c0020", "check digits"],
        ),
        (
            "missing filing indicator",
            |p| edit(p, "reports/FilingIndicators.csv", "B_05.02,true\r\n", ""),
            &[
                "FilingIndicators.csv",
                "filing indicator for B_05.02 is missing",
            ],
        ),
        (
            "dangling contract reference",
            |p| {
                edit(
                    p,
                    "reports/b_07.01.csv",
                    "CA-2026-GCP-001",
                    "CA-2026-GCP-999",
                )
            },
            &[
                "reports/b_07.01.csv row 3 c0010",
                "CA-2026-GCP-999 is not defined in B_02.01 c0010",
            ],
        ),
        (
            "misnamed folder",
            |p| p.name = p.name.replace("DORA010100", "DORA01"),
            &["package folder", "DORA01_DORA", "naming convention"],
        ),
        (
            "folder and parameters disagree",
            |p| p.name = p.name.replace("_2026-03-31_", "_2026-12-31_"),
            &["package folder", "parameters.csv says"],
        ),
        (
            "code outside its list",
            |p| edit(p, "reports/b_07.01.csv", "eba_ZZ:x961", "eba_ZZ:x999"),
            &[
                "b_07.01.csv row 1 c0050 (Substitutability",
                "not in the code list",
            ],
        ),
    ];
    for (defect, damage, names) in cases {
        let mut p = example_package();
        damage(&mut p);
        let found = findings(&p);
        assert!(!found.is_empty(), "{defect}: accepted");
        assert!(
            found.iter().any(|f| names.iter().all(|n| f.contains(n))),
            "{defect}: {found:?}"
        );
    }
}

#[test]
fn structural_defects_and_unreadable_input_are_reported_not_panicked() {
    let mut p = example_package();
    p.files.remove("META-INF/reportPackage.json");
    edit(
        &mut p,
        "reports/report.json",
        "4.0/mod/dora.json",
        "3.3/mod/dora.json",
    );
    let found = findings(&p);
    assert!(
        found
            .iter()
            .any(|f| f == "META-INF/reportPackage.json: is missing"),
        "{found:?}"
    );
    assert!(
        found
            .iter()
            .any(|f| f.contains("EBA taxonomy 4.0 DORA entry point")),
        "{found:?}"
    );
    let mut p = example_package();
    edit(&mut p, "reports/b_05.01.csv", "c0010,c0020", "c0010,c0025");
    assert!(findings(&p)
        .iter()
        .any(|f| f.contains("header must be c0010,c0020")));
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.zip");
    std::fs::write(&junk, b"not a zip").unwrap();
    assert!(validate_zip(&junk).is_err());
}

#[test]
fn the_writer_refuses_what_the_validator_would_refuse() {
    let topology = Topology::load(&repo("examples/three-clouds.toml")).unwrap();
    let text =
        std::fs::read_to_string(repo("tools/dora/docs/example/register-config.json")).unwrap();
    let mut config: RegisterConfig = serde_json::from_str(&text).unwrap();
    config.entity_lei = Some("5493001KJTIIGC8Y1R13".into());
    let err = package(&topology, &config, Utc::now())
        .unwrap_err()
        .to_string();
    assert!(err.contains("check digits"), "{err}");
    config.entity_lei = Some("5493001KJTIIGC8Y1R12".into());
    config.providers.get_mut("gcp").unwrap().contract_reference = None;
    let err = package(&topology, &config, Utc::now())
        .unwrap_err()
        .to_string();
    assert!(err.contains("gcp: contract_reference is missing"), "{err}");
}
