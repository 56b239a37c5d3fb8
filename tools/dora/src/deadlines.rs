//! Reporting time limits of Commission Delegated Regulation (EU) 2025/301, Art. 5
//! ("RTS reporting"), for the reports of DORA Art. 19(4).
//!
//! - Initial notification (Art. 5(1)): within 4 hours of classification as major and no later
//!   than 24 hours from becoming aware of the incident, so the earlier of the two; when the
//!   classification as major comes after those 24 hours, within 4 hours of classification.
//! - Intermediate report (Art. 5(2)): within 72 hours of submitting the initial notification.
//! - Final report (Art. 5(3)): no later than one calendar month after the latest updated
//!   intermediate report (31 January + 1 month = end of February).
//! - Weekend and bank holidays (Art. 5(4)): a time limit falling on a weekend day or a bank
//!   holiday of the entity's Member State may be met by 12:00 of the next working day. Not
//!   for the initial notification and intermediate report of credit institutions, central
//!   counterparties, operators of trading venues and NIS2 essential or important entities
//!   (Art. 3 of Directive (EU) 2022/2555), nor where the competent authority disapplies it;
//!   it still applies to their final report. Judged in the entity's local time.
//!
//! The awareness time is taken to be the detection time of the incident.

use chrono::{
    DateTime, Datelike, Days, Duration, LocalResult, Months, NaiveDate, NaiveTime, SecondsFormat,
    TimeZone, Utc, Weekday,
};
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

/// Art. 5(1): hours from classification as major to the initial notification.
pub const INITIAL_AFTER_CLASSIFICATION_HOURS: i64 = 4;
/// Art. 5(1): hours from awareness after which the initial notification is due at the latest.
pub const INITIAL_AFTER_AWARENESS_HOURS: i64 = 24;
/// Art. 5(2): hours from the initial notification to the intermediate report.
pub const INTERMEDIATE_AFTER_INITIAL_HOURS: i64 = 72;
/// Art. 5(3): calendar months from the latest intermediate report to the final report.
pub const FINAL_AFTER_INTERMEDIATE_MONTHS: u32 = 1;
/// Art. 5(4): the hour of the next working day by which a weekend or holiday limit is met.
pub const EXTENSION_NOON_HOUR: u32 = 12;
/// Most holidays accepted in a calendar.
pub const HOLIDAYS_MAX: usize = 2_000;
/// Days searched for the next working day before giving up (a calendar error).
const WORKING_DAY_SEARCH_MAX: u64 = 60;
/// Earliest time accepted as an incident or report time (seconds since the Unix epoch).
pub const TIME_MIN_UNIX_S: i64 = 0;
/// First instant no longer accepted: 9000-01-01T00:00:00Z. Deadlines reach about two months
/// past the latest input time, so every limit stays a four-digit RFC 3339 year.
pub const TIME_END_UNIX_S: i64 = 221_845_392_000;
/// The accepted range in words, for error messages.
pub const TIME_RANGE: &str = "1970-01-01T00:00:00Z to 8999-12-31T23:59:59Z";

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum DeadlineError {
    #[error("classification time {classified} precedes detection time {detected}")]
    ClassifiedBeforeDetected {
        detected: String,
        classified: String,
    },
    #[error("{field} {sent} precedes {before_field} {before}")]
    SentOutOfOrder {
        field: String,
        sent: String,
        before_field: String,
        before: String,
    },
    #[error("{field} {value} is outside the accepted range {TIME_RANGE}")]
    TimeOutOfRange { field: String, value: String },
    #[error("unknown time zone {0:?} (use an IANA name such as Europe/Berlin)")]
    UnknownTimeZone(String),
    #[error("unknown entity type {0:?}")]
    UnknownEntityType(String),
    #[error("unknown holiday calendar {0:?} (use target, none, or a file of YYYY-MM-DD dates)")]
    UnknownCalendar(String),
    #[error("bad holiday date {0:?}: expected YYYY-MM-DD")]
    BadHoliday(String),
    #[error("more than {HOLIDAYS_MAX} holidays")]
    TooManyHolidays,
    #[error(
        "no working day within {WORKING_DAY_SEARCH_MAX} days of {0}: check the holiday calendar"
    )]
    NoWorkingDay(String),
}

/// Type of financial entity, DORA Art. 2(1)(a)-(t) (the choices of field 1.4 of the
/// template of Implementing Regulation (EU) 2025/302).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EntityType {
    CreditInstitution,
    PaymentInstitution,
    ExemptedPaymentInstitution,
    AccountInformationServiceProvider,
    ElectronicMoneyInstitution,
    ExemptedElectronicMoneyInstitution,
    InvestmentFirm,
    CryptoAssetServiceProvider,
    IssuerOfAssetReferencedTokens,
    CentralSecuritiesDepository,
    CentralCounterparty,
    TradingVenue,
    TradeRepository,
    ManagerOfAlternativeInvestmentFund,
    ManagementCompany,
    DataReportingServiceProvider,
    InsuranceAndReinsuranceUndertaking,
    InsuranceIntermediary,
    InstitutionForOccupationalRetirementProvision,
    CreditRatingAgency,
    AdministratorOfCriticalBenchmarks,
    CrowdfundingServiceProvider,
    SecuritisationRepository,
}

impl EntityType {
    pub const ALL: [EntityType; 23] = [
        EntityType::CreditInstitution,
        EntityType::PaymentInstitution,
        EntityType::ExemptedPaymentInstitution,
        EntityType::AccountInformationServiceProvider,
        EntityType::ElectronicMoneyInstitution,
        EntityType::ExemptedElectronicMoneyInstitution,
        EntityType::InvestmentFirm,
        EntityType::CryptoAssetServiceProvider,
        EntityType::IssuerOfAssetReferencedTokens,
        EntityType::CentralSecuritiesDepository,
        EntityType::CentralCounterparty,
        EntityType::TradingVenue,
        EntityType::TradeRepository,
        EntityType::ManagerOfAlternativeInvestmentFund,
        EntityType::ManagementCompany,
        EntityType::DataReportingServiceProvider,
        EntityType::InsuranceAndReinsuranceUndertaking,
        EntityType::InsuranceIntermediary,
        EntityType::InstitutionForOccupationalRetirementProvision,
        EntityType::CreditRatingAgency,
        EntityType::AdministratorOfCriticalBenchmarks,
        EntityType::CrowdfundingServiceProvider,
        EntityType::SecuritisationRepository,
    ];

    pub fn name(self) -> String {
        serde_json::to_value(self)
            .ok()
            .and_then(|v| v.as_str().map(str::to_string))
            .unwrap_or_default()
    }

    pub fn parse(text: &str) -> Result<EntityType, DeadlineError> {
        let wanted = text.trim().replace('-', "_").to_lowercase();
        EntityType::ALL
            .into_iter()
            .find(|t| t.name() == wanted)
            .ok_or_else(|| DeadlineError::UnknownEntityType(text.to_string()))
    }

    /// Art. 5(4) of 2025/301: entity types whose initial and intermediate reports get no
    /// weekend or holiday extension.
    pub fn excluded_from_extension(self) -> bool {
        matches!(
            self,
            EntityType::CreditInstitution
                | EntityType::CentralCounterparty
                | EntityType::TradingVenue
        )
    }
}

/// A bank-holiday calendar of the entity's Member State.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct HolidayCalendar {
    /// Name, for the output (`target`, `none`, or the file it came from).
    pub name: String,
    /// Built-in TARGET closing days (1 January, Good Friday, Easter Monday, 1 May, 25 and
    /// 26 December), computed for any year. They approximate a Member State's bank holidays;
    /// add the national ones with `extra`.
    pub target: bool,
    /// Further holiday dates.
    pub extra: Vec<NaiveDate>,
}

impl HolidayCalendar {
    pub fn none() -> HolidayCalendar {
        HolidayCalendar {
            name: "none".into(),
            target: false,
            extra: Vec::new(),
        }
    }

    pub fn target() -> HolidayCalendar {
        HolidayCalendar {
            name: "target".into(),
            target: true,
            extra: Vec::new(),
        }
    }

    /// `target`, `none`, or a list of YYYY-MM-DD dates (one per line, `#` comments).
    pub fn parse_named(name: &str) -> Result<HolidayCalendar, DeadlineError> {
        match name {
            "target" => Ok(HolidayCalendar::target()),
            "none" => Ok(HolidayCalendar::none()),
            other => Err(DeadlineError::UnknownCalendar(other.to_string())),
        }
    }

    pub fn add_dates(&mut self, text: &str) -> Result<(), DeadlineError> {
        for line in text.lines() {
            let line = line.split('#').next().unwrap_or("").trim();
            if line.is_empty() {
                continue;
            }
            let date = NaiveDate::parse_from_str(line, "%Y-%m-%d")
                .map_err(|_| DeadlineError::BadHoliday(line.to_string()))?;
            if self.extra.len() >= HOLIDAYS_MAX {
                return Err(DeadlineError::TooManyHolidays);
            }
            self.extra.push(date);
        }
        Ok(())
    }

    pub fn is_holiday(&self, date: NaiveDate) -> bool {
        if self.extra.contains(&date) {
            return true;
        }
        if !self.target {
            return false;
        }
        let (m, d) = (date.month(), date.day());
        if (m, d) == (1, 1) || (m, d) == (5, 1) || (m, d) == (12, 25) || (m, d) == (12, 26) {
            return true;
        }
        match easter_sunday(date.year()) {
            Some(easter) => date == easter - Days::new(2) || date == easter + Days::new(1),
            None => false,
        }
    }

    pub fn is_working_day(&self, date: NaiveDate) -> bool {
        !matches!(date.weekday(), Weekday::Sat | Weekday::Sun) && !self.is_holiday(date)
    }
}

/// Gregorian Easter Sunday (anonymous Gregorian algorithm).
pub fn easter_sunday(year: i32) -> Option<NaiveDate> {
    let a = year % 19;
    let b = year / 100;
    let c = year % 100;
    let d = b / 4;
    let e = b % 4;
    let f = (b + 8) / 25;
    let g = (b - f + 1) / 3;
    let h = (19 * a + b - d - g + 15) % 30;
    let i = c / 4;
    let k = c % 4;
    let l = (32 + 2 * e + 2 * i - h - k) % 7;
    let m = (a + 11 * h + 22 * l) / 451;
    let month = (h + l - 7 * m + 114) / 31;
    let day = (h + l - 7 * m + 114) % 31 + 1;
    NaiveDate::from_ymd_opt(year, month as u32, day as u32)
}

/// Who the entity is, for the time limits. Configuration with defaults for an EU bank.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReportingConfig {
    pub entity_type: EntityType,
    /// Essential or important entity under Art. 3 of the NIS2 Directive (EU) 2022/2555.
    pub nis2_essential_or_important: bool,
    /// The competent authority disapplied the Art. 5(4) extension for this significant entity.
    pub authority_disapplied_extension: bool,
    /// IANA time zone of the entity (weekends and holidays are judged in local time).
    pub time_zone: String,
    pub holidays: HolidayCalendar,
}

impl Default for ReportingConfig {
    fn default() -> Self {
        ReportingConfig {
            entity_type: EntityType::CreditInstitution,
            nis2_essential_or_important: false,
            authority_disapplied_extension: false,
            time_zone: "Europe/Berlin".into(),
            holidays: HolidayCalendar::target(),
        }
    }
}

impl ReportingConfig {
    pub fn tz(&self) -> Result<Tz, DeadlineError> {
        self.time_zone
            .parse::<Tz>()
            .map_err(|_| DeadlineError::UnknownTimeZone(self.time_zone.clone()))
    }

    /// Art. 5(4): does the weekend/holiday extension apply to the initial notification and
    /// the intermediate report of this entity? (It always applies to the final report.)
    pub fn extension_for_initial_and_intermediate(&self) -> bool {
        !(self.entity_type.excluded_from_extension()
            || self.nis2_essential_or_important
            || self.authority_disapplied_extension)
    }
}

/// What the clock is computed from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeadlineInput {
    pub detected_at: DateTime<Utc>,
    pub classified_at: DateTime<Utc>,
    #[serde(default)]
    pub initial_sent: Option<DateTime<Utc>>,
    /// Latest (updated) intermediate report sent.
    #[serde(default)]
    pub intermediate_sent: Option<DateTime<Utc>>,
}

/// One report's time limit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Due {
    /// The time limit after any extension, RFC 3339 UTC.
    pub due: String,
    /// The time limit before the weekend/holiday extension.
    pub unextended: String,
    pub extended: bool,
    /// Counted from a submission that has happened (`sent`) or from the previous report's
    /// time limit because it has not been sent yet (`projected`).
    pub basis: String,
    pub rule: String,
}

/// The three time limits, as printed by `ccbft dora deadlines --json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deadlines {
    pub initial_due: String,
    pub intermediate_due: String,
    pub final_due: String,
    pub initial: Due,
    pub intermediate: Due,
    #[serde(rename = "final")]
    pub final_report: Due,
    pub entity_type: EntityType,
    pub nis2_essential_or_important: bool,
    pub time_zone: String,
    pub holiday_calendar: String,
    /// Whether Art. 5(4) extends the initial and intermediate limits for this entity.
    pub weekend_extension_initial_intermediate: bool,
    pub notes: Vec<String>,
}

pub fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// Compute the three time limits (Art. 5 of Delegated Regulation (EU) 2025/301).
pub fn compute(
    input: &DeadlineInput,
    config: &ReportingConfig,
) -> Result<Deadlines, DeadlineError> {
    check_order(input)?;
    let tz = config.tz()?;
    let ext_ii = config.extension_for_initial_and_intermediate();
    let mut notes = Vec::new();

    // Art. 5(1).
    let by_classification =
        input.classified_at + Duration::hours(INITIAL_AFTER_CLASSIFICATION_HOURS);
    let by_awareness = input.detected_at + Duration::hours(INITIAL_AFTER_AWARENESS_HOURS);
    let late_classification = input.classified_at > by_awareness;
    let initial_raw = if late_classification {
        notes.push("Classified as major more than 24 h after detection: the initial notification is due 4 h after classification (Art. 5(1) of 2025/301).".into());
        by_classification
    } else {
        by_classification.min(by_awareness)
    };
    let initial_rule = if late_classification {
        "classification + 4 h (classified after the first 24 h), Art. 5(1) of Delegated Regulation (EU) 2025/301"
    } else if by_awareness < by_classification {
        "detection + 24 h, earlier than classification + 4 h, Art. 5(1) of Delegated Regulation (EU) 2025/301"
    } else {
        "classification + 4 h, earlier than detection + 24 h, Art. 5(1) of Delegated Regulation (EU) 2025/301"
    };
    let initial = due(
        initial_raw,
        ext_ii,
        &tz,
        config,
        "detection and classification times".into(),
        initial_rule,
    )?;
    let initial_effective = parse_utc(&initial.due);

    // Art. 5(2).
    let (from_initial, basis) = match input.initial_sent {
        Some(sent) => (sent, "sent: initial notification submitted".to_string()),
        None => (
            initial_effective,
            "projected: initial notification not sent yet, counted from its time limit".to_string(),
        ),
    };
    let intermediate = due(
        from_initial + Duration::hours(INTERMEDIATE_AFTER_INITIAL_HOURS),
        ext_ii,
        &tz,
        config,
        basis,
        "initial notification + 72 h, Art. 5(2) of Delegated Regulation (EU) 2025/301",
    )?;
    let intermediate_effective = parse_utc(&intermediate.due);

    // Art. 5(3): one calendar month, counted in the entity's local calendar.
    let (from_intermediate, basis) = match input.intermediate_sent {
        Some(sent) => (
            sent,
            "sent: latest intermediate report submitted".to_string(),
        ),
        None => (
            intermediate_effective,
            "projected: intermediate report not sent yet, counted from its time limit".to_string(),
        ),
    };
    let final_raw = add_months_local(from_intermediate, FINAL_AFTER_INTERMEDIATE_MONTHS, &tz);
    let final_report = due(
        final_raw,
        true,
        &tz,
        config,
        basis,
        "latest intermediate report + 1 calendar month, Art. 5(3) of Delegated Regulation (EU) 2025/301",
    )?;
    if !ext_ii {
        notes.push(format!(
            "No weekend/holiday extension for the initial notification and intermediate report: {} (Art. 5(4) of 2025/301); it still applies to the final report.",
            exclusion_reason(config)
        ));
    }
    Ok(Deadlines {
        initial_due: initial.due.clone(),
        intermediate_due: intermediate.due.clone(),
        final_due: final_report.due.clone(),
        initial,
        intermediate,
        final_report,
        entity_type: config.entity_type,
        nis2_essential_or_important: config.nis2_essential_or_important,
        time_zone: config.time_zone.clone(),
        holiday_calendar: config.holidays.name.clone(),
        weekend_extension_initial_intermediate: ext_ii,
        notes,
    })
}

fn exclusion_reason(config: &ReportingConfig) -> String {
    if config.entity_type.excluded_from_extension() {
        format!(
            "the entity is a {}",
            config.entity_type.name().replace('_', " ")
        )
    } else if config.nis2_essential_or_important {
        "the entity is an essential or important entity under Art. 3 of Directive (EU) 2022/2555"
            .into()
    } else {
        "the competent authority disapplied the extension".into()
    }
}

/// Refuse a time outside [`TIME_RANGE`]; `field` names it in the error.
pub fn check_time(field: &str, t: DateTime<Utc>) -> Result<(), DeadlineError> {
    let s = t.timestamp();
    if (TIME_MIN_UNIX_S..TIME_END_UNIX_S).contains(&s) {
        return Ok(());
    }
    Err(DeadlineError::TimeOutOfRange {
        field: field.to_string(),
        value: t.to_rfc3339_opts(SecondsFormat::Secs, true),
    })
}

fn check_order(input: &DeadlineInput) -> Result<(), DeadlineError> {
    check_time("detected-at", input.detected_at)?;
    check_time("classified-at", input.classified_at)?;
    if let Some(t) = input.initial_sent {
        check_time("initial-sent", t)?;
    }
    if let Some(t) = input.intermediate_sent {
        check_time("intermediate-sent", t)?;
    }
    if input.classified_at < input.detected_at {
        return Err(DeadlineError::ClassifiedBeforeDetected {
            detected: rfc3339(input.detected_at),
            classified: rfc3339(input.classified_at),
        });
    }
    if let Some(sent) = input.initial_sent {
        if sent < input.detected_at {
            return Err(DeadlineError::SentOutOfOrder {
                field: "initial-sent".into(),
                sent: rfc3339(sent),
                before_field: "detected-at".into(),
                before: rfc3339(input.detected_at),
            });
        }
    }
    if let (Some(initial), Some(intermediate)) = (input.initial_sent, input.intermediate_sent) {
        if intermediate < initial {
            return Err(DeadlineError::SentOutOfOrder {
                field: "intermediate-sent".into(),
                sent: rfc3339(intermediate),
                before_field: "initial-sent".into(),
                before: rfc3339(initial),
            });
        }
    }
    Ok(())
}

fn parse_utc(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text)
        .expect("we format these ourselves")
        .with_timezone(&Utc)
}

fn due(
    raw: DateTime<Utc>,
    extension_allowed: bool,
    tz: &Tz,
    config: &ReportingConfig,
    basis: String,
    rule: &str,
) -> Result<Due, DeadlineError> {
    let mut rule = rule.to_string();
    let mut extended = false;
    let mut effective = raw;
    if extension_allowed {
        if let Some(next) = weekend_extension(raw, tz, &config.holidays)? {
            extended = true;
            effective = next;
            rule.push_str("; falls on a weekend day or bank holiday in local time, so it may be met by 12:00 of the next working day, Art. 5(4) of Delegated Regulation (EU) 2025/301");
        }
    }
    Ok(Due {
        due: rfc3339(effective),
        unextended: rfc3339(raw),
        extended,
        basis,
        rule,
    })
}

/// Art. 5(4): if `t` falls on a weekend day or holiday (local), 12:00 local of the next
/// working day; `None` when `t` is on a working day.
pub fn weekend_extension(
    t: DateTime<Utc>,
    tz: &Tz,
    calendar: &HolidayCalendar,
) -> Result<Option<DateTime<Utc>>, DeadlineError> {
    let local_date = t.with_timezone(tz).date_naive();
    if calendar.is_working_day(local_date) {
        return Ok(None);
    }
    let mut day = local_date;
    for _ in 0..WORKING_DAY_SEARCH_MAX {
        day = day + Days::new(1);
        if calendar.is_working_day(day) {
            let noon = NaiveTime::from_hms_opt(EXTENSION_NOON_HOUR, 0, 0).expect("valid time");
            return Ok(Some(local_to_utc(day.and_time(noon), tz)));
        }
    }
    Err(DeadlineError::NoWorkingDay(local_date.to_string()))
}

fn local_to_utc(local: chrono::NaiveDateTime, tz: &Tz) -> DateTime<Utc> {
    match tz.from_local_datetime(&local) {
        LocalResult::Single(t) => t.with_timezone(&Utc),
        LocalResult::Ambiguous(early, _) => early.with_timezone(&Utc),
        // A local time skipped by a DST change: take the instant an hour later.
        LocalResult::None => match tz.from_local_datetime(&(local + Duration::hours(1))) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => t.with_timezone(&Utc),
            LocalResult::None => Utc.from_utc_datetime(&local),
        },
    }
}

/// Add calendar months in the entity's local calendar; the day is clamped to the end of a
/// shorter month (31 January + 1 month = 28 or 29 February).
pub fn add_months_local(t: DateTime<Utc>, months: u32, tz: &Tz) -> DateTime<Utc> {
    let local = t.with_timezone(tz).naive_local();
    let shifted = local
        .checked_add_months(Months::new(months))
        .expect("dates in range");
    local_to_utc(shifted, tz)
}

/// A report that is overdue or was sent late.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OverdueAlert {
    pub report: String,
    pub due: String,
    pub overdue_by_minutes: i64,
    pub message: String,
}

/// Which reports are overdue at `now` (DORA Art. 19(4); an entity that cannot meet a limit
/// must inform the authority by that limit with reasons, Art. 5 of 2025/301).
pub fn overdue(
    deadlines: &Deadlines,
    input: &DeadlineInput,
    final_sent: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Vec<OverdueAlert> {
    let mut alerts = Vec::new();
    let stages = [
        (
            "initial notification",
            &deadlines.initial_due,
            input.initial_sent,
        ),
        (
            "intermediate report",
            &deadlines.intermediate_due,
            input.intermediate_sent,
        ),
        ("final report", &deadlines.final_due, final_sent),
    ];
    for (name, due_text, sent) in stages {
        let due_at = parse_utc(due_text);
        let late_at = sent.unwrap_or(now);
        if late_at > due_at {
            let minutes = (late_at - due_at).num_minutes();
            let message = match sent {
                Some(_) => format!("{name} was sent {} after its time limit {due_text}", span(minutes)),
                None => format!("{name} OVERDUE by {} (due {due_text}): inform the competent authority with the reasons", span(minutes)),
            };
            alerts.push(OverdueAlert {
                report: name.to_string(),
                due: due_text.clone(),
                overdue_by_minutes: minutes,
                message,
            });
        }
    }
    alerts
}

/// A duration in minutes as `2d 3h 5min`, `3h 5min` or `5 min`.
pub fn span(minutes: i64) -> String {
    let (d, h, m) = (minutes / 1440, (minutes % 1440) / 60, minutes % 60);
    match (d, h) {
        (0, 0) => format!("{m} min"),
        (0, _) => format!("{h}h {m}min"),
        _ => format!("{d}d {h}h {m}min"),
    }
}
