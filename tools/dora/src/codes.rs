//! Identifier and code checks shared by the reports and the register: LEI check digits
//! (ISO 17442-1, mod 97-10 of ISO 7064), ISO 3166-1 alpha-2 country codes and ISO 4217
//! currency codes.

/// ISO 3166-1 alpha-2 codes (officially assigned; 249 codes).
pub const ISO_3166_ALPHA2: [&str; 249] = [
    "AD", "AE", "AF", "AG", "AI", "AL", "AM", "AO", "AQ", "AR", "AS", "AT", "AU", "AW", "AX", "AZ",
    "BA", "BB", "BD", "BE", "BF", "BG", "BH", "BI", "BJ", "BL", "BM", "BN", "BO", "BQ", "BR", "BS",
    "BT", "BV", "BW", "BY", "BZ", "CA", "CC", "CD", "CF", "CG", "CH", "CI", "CK", "CL", "CM", "CN",
    "CO", "CR", "CU", "CV", "CW", "CX", "CY", "CZ", "DE", "DJ", "DK", "DM", "DO", "DZ", "EC", "EE",
    "EG", "EH", "ER", "ES", "ET", "FI", "FJ", "FK", "FM", "FO", "FR", "GA", "GB", "GD", "GE", "GF",
    "GG", "GH", "GI", "GL", "GM", "GN", "GP", "GQ", "GR", "GS", "GT", "GU", "GW", "GY", "HK", "HM",
    "HN", "HR", "HT", "HU", "ID", "IE", "IL", "IM", "IN", "IO", "IQ", "IR", "IS", "IT", "JE", "JM",
    "JO", "JP", "KE", "KG", "KH", "KI", "KM", "KN", "KP", "KR", "KW", "KY", "KZ", "LA", "LB", "LC",
    "LI", "LK", "LR", "LS", "LT", "LU", "LV", "LY", "MA", "MC", "MD", "ME", "MF", "MG", "MH", "MK",
    "ML", "MM", "MN", "MO", "MP", "MQ", "MR", "MS", "MT", "MU", "MV", "MW", "MX", "MY", "MZ", "NA",
    "NC", "NE", "NF", "NG", "NI", "NL", "NO", "NP", "NR", "NU", "NZ", "OM", "PA", "PE", "PF", "PG",
    "PH", "PK", "PL", "PM", "PN", "PR", "PS", "PT", "PW", "PY", "QA", "RE", "RO", "RS", "RU", "RW",
    "SA", "SB", "SC", "SD", "SE", "SG", "SH", "SI", "SJ", "SK", "SL", "SM", "SN", "SO", "SR", "SS",
    "ST", "SV", "SX", "SY", "SZ", "TC", "TD", "TF", "TG", "TH", "TJ", "TK", "TL", "TM", "TN", "TO",
    "TR", "TT", "TV", "TW", "TZ", "UA", "UG", "UM", "US", "UY", "UZ", "VA", "VC", "VE", "VG", "VI",
    "VN", "VU", "WF", "WS", "YE", "YT", "ZA", "ZM", "ZW",
];

/// ISO 4217 alphabetic codes of currencies in circulation (funds and precious-metal codes
/// excluded, as a register or report amount is never in them).
pub const ISO_4217: [&str; 153] = [
    "AED", "AFN", "ALL", "AMD", "AOA", "ARS", "AUD", "AWG", "AZN", "BAM", "BBD", "BDT", "BHD",
    "BIF", "BMD", "BND", "BOB", "BRL", "BSD", "BTN", "BWP", "BYN", "BZD", "CAD", "CDF", "CHF",
    "CLP", "CNY", "COP", "CRC", "CUP", "CVE", "CZK", "DJF", "DKK", "DOP", "DZD", "EGP", "ERN",
    "ETB", "EUR", "FJD", "FKP", "GBP", "GEL", "GHS", "GIP", "GMD", "GNF", "GTQ", "GYD", "HKD",
    "HNL", "HTG", "HUF", "IDR", "ILS", "INR", "IQD", "IRR", "ISK", "JMD", "JOD", "JPY", "KES",
    "KGS", "KHR", "KMF", "KPW", "KRW", "KWD", "KYD", "KZT", "LAK", "LBP", "LKR", "LRD", "LSL",
    "LYD", "MAD", "MDL", "MGA", "MKD", "MMK", "MNT", "MOP", "MRU", "MUR", "MVR", "MWK", "MXN",
    "MYR", "MZN", "NAD", "NGN", "NIO", "NOK", "NPR", "NZD", "OMR", "PAB", "PEN", "PGK", "PHP",
    "PKR", "PLN", "PYG", "QAR", "RON", "RSD", "RUB", "RWF", "SAR", "SBD", "SCR", "SDG", "SEK",
    "SGD", "SHP", "SLE", "SOS", "SRD", "SSP", "STN", "SVC", "SYP", "SZL", "THB", "TJS", "TMT",
    "TND", "TOP", "TRY", "TTD", "TWD", "TZS", "UAH", "UGX", "USD", "UYU", "UZS", "VES", "VND",
    "VUV", "WST", "XAF", "XCD", "XOF", "XPF", "YER", "ZAR", "ZMW", "ZWG",
];

/// Why a string is not a valid LEI.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeiError {
    #[error("an LEI has 20 characters, {0} has {1}")]
    Length(String, usize),
    #[error("an LEI is 18 upper-case letters or digits and 2 check digits; {0} is not")]
    Characters(String),
    #[error("{0} fails the ISO 17442 check digits (mod 97-10 remainder {1}, must be 1)")]
    CheckDigits(String, u32),
}

/// Check an LEI: 20 characters, `[A-Z0-9]{18}[0-9]{2}`, and the ISO 7064 mod 97-10 check
/// (letters as 10-35, the whole number mod 97 equals 1), as ISO 17442-1 prescribes.
pub fn check_lei(lei: &str) -> Result<(), LeiError> {
    let len = lei.chars().count();
    if len != 20 {
        return Err(LeiError::Length(lei.into(), len));
    }
    let bytes = lei.as_bytes();
    let body_ok = bytes[..18]
        .iter()
        .all(|b| b.is_ascii_digit() || b.is_ascii_uppercase());
    if !body_ok || !bytes[18..].iter().all(u8::is_ascii_digit) {
        return Err(LeiError::Characters(lei.into()));
    }
    let mut rem: u32 = 0;
    for b in bytes {
        let v = if b.is_ascii_digit() {
            u32::from(b - b'0')
        } else {
            u32::from(b - b'A') + 10
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    if rem == 1 {
        Ok(())
    } else {
        Err(LeiError::CheckDigits(lei.into(), rem))
    }
}

pub fn is_country(code: &str) -> bool {
    ISO_3166_ALPHA2.binary_search(&code).is_ok()
}

pub fn is_currency(code: &str) -> bool {
    ISO_4217.binary_search(&code).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn code_lists_are_sorted_and_unique_so_binary_search_works() {
        assert!(ISO_3166_ALPHA2.windows(2).all(|w| w[0] < w[1]));
        assert!(ISO_4217.windows(2).all(|w| w[0] < w[1]));
    }

    #[test]
    fn lei_check_digits() {
        // GLEIF's own LEI and a published example LEI.
        assert_eq!(check_lei("506700GE1G29325QX363"), Ok(()));
        assert_eq!(check_lei("5493001KJTIIGC8Y1R12"), Ok(()));
        assert!(matches!(
            check_lei("5493001KJTIIGC8Y1R13"),
            Err(LeiError::CheckDigits(..))
        ));
        assert!(matches!(check_lei("549300"), Err(LeiError::Length(..))));
        assert!(matches!(
            check_lei("5493001kjtiigc8y1r12"),
            Err(LeiError::Characters(..))
        ));
    }

    #[test]
    fn countries_and_currencies() {
        assert!(is_country("DE") && is_country("IE") && !is_country("XX") && !is_country("EU"));
        assert!(is_currency("EUR") && is_currency("USD") && !is_currency("EUX"));
    }
}
