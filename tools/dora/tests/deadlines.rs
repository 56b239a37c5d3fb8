//! Reporting time limits of Delegated Regulation (EU) 2025/301 Art. 5: the 4 h / 24 h rule,
//! classification after 24 h, 72 h, one calendar month (end of month), and the weekend and
//! holiday extension where it applies and where it does not.

use ccbft_dora::chrono::{DateTime, NaiveDate, Utc};
use ccbft_dora::deadlines::{
    coming_due, compute, easter_sunday, overdue, DeadlineError, DeadlineInput, EntityType,
    HolidayCalendar, ReportingConfig,
};

fn t(s: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
}

fn config(entity: EntityType) -> ReportingConfig {
    ReportingConfig {
        entity_type: entity,
        ..ReportingConfig::default()
    }
}

struct Case {
    name: &'static str,
    config: ReportingConfig,
    detected: &'static str,
    classified: &'static str,
    initial_sent: Option<&'static str>,
    intermediate_sent: Option<&'static str>,
    initial: Option<&'static str>,
    intermediate: Option<&'static str>,
    final_due: Option<&'static str>,
}

fn c(
    name: &'static str,
    config: ReportingConfig,
    detected: &'static str,
    classified: &'static str,
) -> Case {
    Case {
        name,
        config,
        detected,
        classified,
        initial_sent: None,
        intermediate_sent: None,
        initial: None,
        intermediate: None,
        final_due: None,
    }
}

impl Case {
    fn sent(mut self, initial: Option<&'static str>, intermediate: Option<&'static str>) -> Case {
        self.initial_sent = initial;
        self.intermediate_sent = intermediate;
        self
    }
    fn expect(
        mut self,
        initial: Option<&'static str>,
        intermediate: Option<&'static str>,
        final_due: Option<&'static str>,
    ) -> Case {
        self.initial = initial;
        self.intermediate = intermediate;
        self.final_due = final_due;
        self
    }
}

#[test]
fn time_limits_table() {
    use EntityType::*;
    let credit = || config(CreditInstitution);
    let payment = || config(PaymentInstitution);
    let nis2_payment = || ReportingConfig {
        nis2_essential_or_important: true,
        ..config(PaymentInstitution)
    };
    let disapplied = || ReportingConfig {
        authority_disapplied_extension: true,
        ..config(InvestmentFirm)
    };
    let no_holidays = |e| ReportingConfig {
        holidays: HolidayCalendar::none(),
        ..config(e)
    };
    let utc_payment = || ReportingConfig {
        time_zone: "UTC".into(),
        ..config(PaymentInstitution)
    };
    let mut custom = ReportingConfig {
        holidays: HolidayCalendar::none(),
        ..config(PaymentInstitution)
    };
    custom
        .holidays
        .add_dates("# national holiday\n2026-03-11\n")
        .unwrap();
    let cases = vec![
        // Art. 5(1): classification + 4 h is earlier than detection + 24 h.
        c(
            "classification + 4 h",
            credit(),
            "2026-03-03T08:00:00Z",
            "2026-03-03T10:00:00Z",
        )
        .expect(
            Some("2026-03-03T14:00:00Z"),
            Some("2026-03-06T14:00:00Z"),
            None,
        ),
        // Final falls on Easter Monday 2026-04-06 (TARGET holiday): the extension applies to
        // the final report even for a credit institution -> Tue 12:00 CEST.
        c(
            "final report extended over Easter Monday for a credit institution",
            credit(),
            "2026-03-03T08:00:00Z",
            "2026-03-03T10:00:00Z",
        )
        .expect(None, None, Some("2026-04-07T10:00:00Z")),
        // The 24 h cap.
        c(
            "24 h cap",
            credit(),
            "2026-03-03T08:00:00Z",
            "2026-03-04T06:00:00Z",
        )
        .expect(Some("2026-03-04T08:00:00Z"), None, None),
        c(
            "classification + 4 h equals detection + 24 h",
            credit(),
            "2026-03-03T08:00:00Z",
            "2026-03-04T04:00:00Z",
        )
        .expect(Some("2026-03-04T08:00:00Z"), None, None),
        c(
            "classified exactly at 24 h",
            credit(),
            "2026-03-03T08:00:00Z",
            "2026-03-04T08:00:00Z",
        )
        .expect(Some("2026-03-04T08:00:00Z"), None, None),
        c(
            "classified after 24 h: 4 h from classification",
            credit(),
            "2026-03-03T08:00:00Z",
            "2026-03-04T09:00:00Z",
        )
        .expect(Some("2026-03-04T13:00:00Z"), None, None),
        // Art. 5(2): 72 h from the initial notification actually sent.
        c(
            "intermediate from the initial sent",
            credit(),
            "2026-03-03T08:00:00Z",
            "2026-03-03T10:00:00Z",
        )
        .sent(Some("2026-03-03T12:00:00Z"), None)
        .expect(
            Some("2026-03-03T14:00:00Z"),
            Some("2026-03-06T12:00:00Z"),
            None,
        ),
        // Art. 5(3): one calendar month; 31 January + 1 month = 28 February 2026 (a Saturday:
        // extended to Monday 2 March 12:00 CET).
        c(
            "end of month, final on a Saturday",
            credit(),
            "2026-01-27T08:00:00Z",
            "2026-01-27T09:00:00Z",
        )
        .sent(Some("2026-01-27T12:00:00Z"), Some("2026-01-31T10:00:00Z"))
        .expect(None, None, Some("2026-03-02T11:00:00Z")),
        c(
            "end of month in a leap year",
            credit(),
            "2028-01-27T08:00:00Z",
            "2028-01-27T09:00:00Z",
        )
        .sent(Some("2028-01-27T12:00:00Z"), Some("2028-01-31T10:00:00Z"))
        .expect(None, None, Some("2028-02-29T10:00:00Z")),
        c(
            "31 March + 1 month = 30 April",
            credit(),
            "2026-03-27T08:00:00Z",
            "2026-03-27T09:00:00Z",
        )
        .sent(Some("2026-03-27T12:00:00Z"), Some("2026-03-31T10:00:00Z"))
        .expect(None, None, Some("2026-04-30T10:00:00Z")),
        // Art. 5(4): weekends.
        c(
            "weekend, credit institution: no extension",
            credit(),
            "2026-03-07T08:00:00Z",
            "2026-03-07T09:00:00Z",
        )
        .expect(Some("2026-03-07T13:00:00Z"), None, None),
        c(
            "weekend, payment institution: Monday noon",
            payment(),
            "2026-03-07T08:00:00Z",
            "2026-03-07T09:00:00Z",
        )
        .expect(Some("2026-03-09T11:00:00Z"), None, None),
        c(
            "weekend, NIS2 essential payment institution: no extension",
            nis2_payment(),
            "2026-03-07T08:00:00Z",
            "2026-03-07T09:00:00Z",
        )
        .expect(Some("2026-03-07T13:00:00Z"), None, None),
        c(
            "weekend, central counterparty: no extension",
            config(CentralCounterparty),
            "2026-03-07T08:00:00Z",
            "2026-03-07T09:00:00Z",
        )
        .expect(Some("2026-03-07T13:00:00Z"), None, None),
        c(
            "weekend, trading venue: no extension",
            config(TradingVenue),
            "2026-03-07T08:00:00Z",
            "2026-03-07T09:00:00Z",
        )
        .expect(Some("2026-03-07T13:00:00Z"), None, None),
        c(
            "weekend, authority disapplied: no extension",
            disapplied(),
            "2026-03-07T08:00:00Z",
            "2026-03-07T09:00:00Z",
        )
        .expect(Some("2026-03-07T13:00:00Z"), None, None),
        c(
            "intermediate on a Sunday, payment institution",
            payment(),
            "2026-03-05T08:00:00Z",
            "2026-03-05T09:00:00Z",
        )
        .sent(Some("2026-03-05T10:00:00Z"), None)
        .expect(None, Some("2026-03-09T11:00:00Z"), None),
        c(
            "intermediate on a Sunday, credit institution",
            credit(),
            "2026-03-05T08:00:00Z",
            "2026-03-05T09:00:00Z",
        )
        .sent(Some("2026-03-05T10:00:00Z"), None)
        .expect(None, Some("2026-03-08T10:00:00Z"), None),
        // Weekend judged in local time: Friday 23:30 UTC is Saturday 00:30 in Berlin.
        c(
            "Friday UTC is Saturday in Berlin",
            payment(),
            "2026-03-06T19:30:00Z",
            "2026-03-06T19:30:00Z",
        )
        .expect(Some("2026-03-09T11:00:00Z"), None, None),
        c(
            "Friday in a UTC entity: no extension",
            utc_payment(),
            "2026-03-06T19:30:00Z",
            "2026-03-06T19:30:00Z",
        )
        .expect(Some("2026-03-06T23:30:00Z"), None, None),
        c(
            "Sunday UTC is Monday in Berlin: no extension",
            payment(),
            "2026-03-08T19:30:00Z",
            "2026-03-08T19:30:00Z",
        )
        .expect(Some("2026-03-08T23:30:00Z"), None, None),
        // Bank holidays.
        c(
            "1 May (TARGET), payment institution",
            payment(),
            "2026-05-01T06:00:00Z",
            "2026-05-01T07:00:00Z",
        )
        .expect(Some("2026-05-04T10:00:00Z"), None, None),
        c(
            "1 May without a holiday calendar",
            no_holidays(PaymentInstitution),
            "2026-05-01T06:00:00Z",
            "2026-05-01T07:00:00Z",
        )
        .expect(Some("2026-05-01T11:00:00Z"), None, None),
        c(
            "1 May, credit institution: no extension",
            credit(),
            "2026-05-01T06:00:00Z",
            "2026-05-01T07:00:00Z",
        )
        .expect(Some("2026-05-01T11:00:00Z"), None, None),
        c(
            "Good Friday to Tuesday after Easter",
            payment(),
            "2026-04-03T06:00:00Z",
            "2026-04-03T07:00:00Z",
        )
        .expect(Some("2026-04-07T10:00:00Z"), None, None),
        c(
            "custom national holiday",
            custom,
            "2026-03-11T06:00:00Z",
            "2026-03-11T07:00:00Z",
        )
        .expect(Some("2026-03-12T11:00:00Z"), None, None),
    ];
    for case in cases {
        let input = DeadlineInput {
            detected_at: t(case.detected),
            classified_at: t(case.classified),
            initial_sent: case.initial_sent.map(t),
            intermediate_sent: case.intermediate_sent.map(t),
        };
        let d = compute(&input, &case.config).unwrap_or_else(|e| panic!("{}: {e}", case.name));
        if let Some(x) = case.initial {
            assert_eq!(
                d.initial_due, x,
                "{}: initial ({})",
                case.name, d.initial.rule
            );
        }
        if let Some(x) = case.intermediate {
            assert_eq!(
                d.intermediate_due, x,
                "{}: intermediate ({})",
                case.name, d.intermediate.rule
            );
        }
        if let Some(x) = case.final_due {
            assert_eq!(
                d.final_due, x,
                "{}: final ({})",
                case.name, d.final_report.rule
            );
        }
        for due in [&d.initial, &d.intermediate, &d.final_report] {
            assert!(
                due.rule.contains("2025/301"),
                "{}: rule cites the RTS",
                case.name
            );
            assert_eq!(due.extended, due.due != due.unextended, "{}", case.name);
        }
        assert!(d.initial_due.ends_with('Z') && d.final_due.ends_with('Z'));
    }
}

#[test]
fn order_errors() {
    let cfg = ReportingConfig::default();
    let bad = DeadlineInput {
        detected_at: t("2026-03-03T08:00:00Z"),
        classified_at: t("2026-03-03T07:00:00Z"),
        initial_sent: None,
        intermediate_sent: None,
    };
    assert!(matches!(
        compute(&bad, &cfg),
        Err(DeadlineError::ClassifiedBeforeDetected { .. })
    ));
    let bad = DeadlineInput {
        detected_at: t("2026-03-03T08:00:00Z"),
        classified_at: t("2026-03-03T09:00:00Z"),
        initial_sent: Some(t("2026-03-03T12:00:00Z")),
        intermediate_sent: Some(t("2026-03-03T11:00:00Z")),
    };
    let err = compute(&bad, &cfg).unwrap_err();
    assert!(err.to_string().contains("intermediate-sent"), "{err}");
    let bad_tz = ReportingConfig {
        time_zone: "Mars/Olympus".into(),
        ..ReportingConfig::default()
    };
    let ok = DeadlineInput {
        detected_at: t("2026-03-03T08:00:00Z"),
        classified_at: t("2026-03-03T09:00:00Z"),
        initial_sent: None,
        intermediate_sent: None,
    };
    assert!(matches!(
        compute(&ok, &bad_tz),
        Err(DeadlineError::UnknownTimeZone(_))
    ));
    assert!(EntityType::parse("bank").is_err());
    assert!(EntityType::parse("payment-institution").is_ok());
}

#[test]
fn overdue_alerts() {
    let cfg = ReportingConfig::default();
    let input = DeadlineInput {
        detected_at: t("2026-03-03T08:00:00Z"),
        classified_at: t("2026-03-03T10:00:00Z"),
        initial_sent: None,
        intermediate_sent: None,
    };
    let d = compute(&input, &cfg).unwrap();
    assert!(overdue(&d, &input, None, t("2026-03-03T13:59:00Z")).is_empty());
    let alerts = overdue(&d, &input, None, t("2026-03-03T15:00:00Z"));
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].report, "initial notification");
    assert_eq!(alerts[0].overdue_by_minutes, 60);
    assert!(alerts[0].message.contains("OVERDUE"));
    let late = DeadlineInput {
        initial_sent: Some(t("2026-03-03T14:30:00Z")),
        ..input.clone()
    };
    let d = compute(&late, &cfg).unwrap();
    let alerts = overdue(&d, &late, None, t("2026-03-03T15:00:00Z"));
    assert_eq!(alerts.len(), 1);
    assert!(alerts[0].message.contains("was sent 30 min after"));
}

#[test]
fn easter_and_target_calendar() {
    assert_eq!(easter_sunday(2026), NaiveDate::from_ymd_opt(2026, 4, 5));
    assert_eq!(easter_sunday(2027), NaiveDate::from_ymd_opt(2027, 3, 28));
    let cal = HolidayCalendar::target();
    for (y, m, d, holiday) in [
        (2026, 4, 3, true),
        (2026, 4, 6, true),
        (2026, 12, 25, true),
        (2026, 12, 26, true),
        (2026, 1, 1, true),
        (2026, 4, 2, false),
        (2026, 12, 24, false),
    ] {
        assert_eq!(
            cal.is_holiday(NaiveDate::from_ymd_opt(y, m, d).unwrap()),
            holiday,
            "{y}-{m}-{d}"
        );
    }
    let mut bad = HolidayCalendar::none();
    assert!(matches!(
        bad.add_dates("2026-13-01"),
        Err(DeadlineError::BadHoliday(_))
    ));
}

#[test]
fn reports_coming_due_within_the_warning_window() {
    let cfg = ReportingConfig::default();
    let input = DeadlineInput {
        detected_at: t("2026-03-03T08:00:00Z"),
        classified_at: t("2026-03-03T10:00:00Z"),
        initial_sent: None,
        intermediate_sent: None,
    };
    let d = compute(&input, &cfg).unwrap(); // initial notification due 14:00
    let due = |now: &str, input: &DeadlineInput| coming_due(&d, input, None, t(now), 60);
    assert!(
        due("2026-03-03T12:59:00Z", &input).is_empty(),
        "61 min ahead"
    );
    let alerts = due("2026-03-03T13:00:00Z", &input);
    assert_eq!(alerts.len(), 1);
    assert_eq!(alerts[0].report, "initial notification");
    assert_eq!(alerts[0].due_in_minutes, 60);
    assert!(
        alerts[0].message.contains("due in 1h"),
        "{}",
        alerts[0].message
    );
    assert_eq!(due("2026-03-03T14:00:00Z", &input)[0].due_in_minutes, 0);
    assert!(
        due("2026-03-03T14:01:00Z", &input).is_empty(),
        "overdue now"
    );
    let sent = DeadlineInput {
        initial_sent: Some(t("2026-03-03T13:10:00Z")),
        ..input.clone()
    };
    assert!(
        due("2026-03-03T13:30:00Z", &sent).is_empty(),
        "sent already"
    );
    let event = ccbft_dora::export::from_due("INC-7", &alerts[0]);
    assert_eq!(event.id, "due-INC-7-initial_notification");
    assert_eq!(event.kind, "deadline_due");
}
