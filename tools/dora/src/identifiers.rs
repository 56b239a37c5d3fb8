//! Identifier checks for operator input: the LEI of ISO 17442 and the country codes of
//! ISO 3166-1 alpha-2.

/// Length of a Legal Entity Identifier (ISO 17442).
pub const LEI_LEN: usize = 20;

/// Why a string is not a LEI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeiError {
    #[error("a LEI has {LEI_LEN} characters, {0:?} has {1}")]
    Length(String, usize),
    #[error(
        "a LEI has upper-case letters and digits only (and two check digits at the end): {0:?}"
    )]
    Characters(String),
    #[error("{0:?} fails the ISO 17442 check digits (ISO 7064 MOD 97-10)")]
    CheckDigits(String),
}

/// Check a LEI: 18 upper-case alphanumerics and two check digits such that the whole, read
/// with letters as 10..35, is 1 modulo 97 (ISO 17442, ISO 7064 MOD 97-10).
pub fn check_lei(lei: &str) -> Result<(), LeiError> {
    let count = lei.chars().count();
    if count != LEI_LEN {
        return Err(LeiError::Length(lei.to_string(), count));
    }
    let body_ok = lei
        .chars()
        .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    let check_ok = lei[18..].chars().all(|c| c.is_ascii_digit());
    if !body_ok || !check_ok {
        return Err(LeiError::Characters(lei.to_string()));
    }
    let mut remainder: u32 = 0;
    for c in lei.chars() {
        let value = c.to_digit(36).expect("checked alphanumeric");
        remainder = if value >= 10 {
            (remainder * 100 + value) % 97
        } else {
            (remainder * 10 + value) % 97
        };
    }
    if remainder != 1 {
        return Err(LeiError::CheckDigits(lei.to_string()));
    }
    Ok(())
}

/// The officially assigned ISO 3166-1 alpha-2 codes.
const COUNTRY_CODES: &str = "AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL \
BM BN BO BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ DK DM \
DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP GQ GR GS GT GU GW GY \
HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG KH KI KM KN KP KR KW KY KZ LA LB LC \
LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE \
NF NG NI NL NO NP NR NU NZ OM PA PE PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD \
SE SG SH SI SJ SK SL SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA \
UG UM US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW";

/// Is `code` an ISO 3166-1 alpha-2 country code (upper case, as the register templates use)?
pub fn is_country_code(code: &str) -> bool {
    code.len() == 2 && COUNTRY_CODES.split(' ').any(|c| c == code)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lei_check_digits() {
        // Published LEIs (GLEIF): the check digits hold.
        assert_eq!(check_lei("5493001KJTIIGC8Y1R12"), Ok(()));
        assert_eq!(check_lei("529900T8BM49AURSDO55"), Ok(()));
        // One character changed: the check digits catch it.
        assert!(matches!(
            check_lei("529900T8BM49AURSDO56"),
            Err(LeiError::CheckDigits(_))
        ));
        assert!(matches!(check_lei("X"), Err(LeiError::Length(_, 1))));
        assert!(matches!(
            check_lei("529900t8bm49aursdo55"),
            Err(LeiError::Characters(_))
        ));
        assert!(matches!(
            check_lei("529900T8BM49AURSDOAB"),
            Err(LeiError::Characters(_))
        ));
    }

    #[test]
    fn country_codes() {
        assert_eq!(COUNTRY_CODES.split(' ').count(), 249);
        for code in ["DE", "IE", "US", "LU"] {
            assert!(is_country_code(code), "{code}");
        }
        for code in ["Narnia", "de", "EU", "XX", "", "D"] {
            assert!(!is_country_code(code), "{code}");
        }
    }
}
