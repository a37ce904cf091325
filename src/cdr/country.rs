//! The country of an E.164 number, from its ITU-T country calling code (E.164 Annex / ITU-T
//! Operational Bulletin list), as an ISO 3166-1 alpha-2 code: `+551130000000` → `BR`.
//!
//! PURE: a table and a longest-prefix match; no I/O, no metadata loading.
//!
//! Calling codes are prefix-free, so most numbers match one entry. A few codes are shared, and the
//! table then lists the smaller members' own prefixes, the longest match winning:
//! * `+1` (NANP): Canada's and the Caribbean members' area codes are listed; every other `+1`
//!   number is `US` (which includes the territories not listed, e.g. Guam's `+1 671` is `GU`, but
//!   an unknown or future area code falls back to `US`).
//! * `+7`: `+7 6…` and `+7 7…` are Kazakhstan (`KZ`), the rest Russia (`RU`).
//! * `+44` Guernsey/Jersey/Isle of Man landlines, `+47 79` Svalbard, `+358 18` Åland, `+39 06 698`
//!   Vatican, `+262 269/639` Mayotte, `+599 3/4/7` Caribbean Netherlands; otherwise the main
//!   country of the code (`+590` is `GP`, `+61` `AU`, `+212` `MA`).
//!
//! International non-geographic codes (`+800`, `+808`, `+870`, `+878`, `+881`–`+883`, `+888`,
//! `+979`, `+991`), unassigned codes, and anything that is not `+` and 1–15 digits (extensions
//! like `7000`, SIP user names) have no country.

/// `(prefix after the "+", ISO 3166-1 alpha-2)`. Order does not matter: the longest match wins.
const CODES: &[(&str, &str)] = &[
    // Zone 1: NANP. Default US; Canada's and the other members' area codes.
    ("1", "US"),
    ("1204", "CA"),
    ("1226", "CA"),
    ("1236", "CA"),
    ("1249", "CA"),
    ("1250", "CA"),
    ("1257", "CA"),
    ("1263", "CA"),
    ("1289", "CA"),
    ("1306", "CA"),
    ("1343", "CA"),
    ("1354", "CA"),
    ("1365", "CA"),
    ("1367", "CA"),
    ("1368", "CA"),
    ("1382", "CA"),
    ("1387", "CA"),
    ("1403", "CA"),
    ("1416", "CA"),
    ("1418", "CA"),
    ("1428", "CA"),
    ("1431", "CA"),
    ("1437", "CA"),
    ("1438", "CA"),
    ("1450", "CA"),
    ("1468", "CA"),
    ("1474", "CA"),
    ("1506", "CA"),
    ("1514", "CA"),
    ("1519", "CA"),
    ("1548", "CA"),
    ("1579", "CA"),
    ("1581", "CA"),
    ("1584", "CA"),
    ("1587", "CA"),
    ("1604", "CA"),
    ("1613", "CA"),
    ("1639", "CA"),
    ("1647", "CA"),
    ("1672", "CA"),
    ("1683", "CA"),
    ("1705", "CA"),
    ("1709", "CA"),
    ("1742", "CA"),
    ("1753", "CA"),
    ("1778", "CA"),
    ("1780", "CA"),
    ("1782", "CA"),
    ("1807", "CA"),
    ("1819", "CA"),
    ("1825", "CA"),
    ("1867", "CA"),
    ("1873", "CA"),
    ("1879", "CA"),
    ("1902", "CA"),
    ("1905", "CA"),
    ("1942", "CA"),
    ("1242", "BS"),
    ("1246", "BB"),
    ("1264", "AI"),
    ("1268", "AG"),
    ("1284", "VG"),
    ("1340", "VI"),
    ("1345", "KY"),
    ("1441", "BM"),
    ("1473", "GD"),
    ("1649", "TC"),
    ("1658", "JM"),
    ("1664", "MS"),
    ("1670", "MP"),
    ("1671", "GU"),
    ("1684", "AS"),
    ("1721", "SX"),
    ("1758", "LC"),
    ("1767", "DM"),
    ("1784", "VC"),
    ("1787", "PR"),
    ("1809", "DO"),
    ("1829", "DO"),
    ("1849", "DO"),
    ("1868", "TT"),
    ("1869", "KN"),
    ("1876", "JM"),
    ("1939", "PR"),
    // Zone 2: Africa and some islands.
    ("20", "EG"),
    ("211", "SS"),
    ("212", "MA"),
    ("213", "DZ"),
    ("216", "TN"),
    ("218", "LY"),
    ("220", "GM"),
    ("221", "SN"),
    ("222", "MR"),
    ("223", "ML"),
    ("224", "GN"),
    ("225", "CI"),
    ("226", "BF"),
    ("227", "NE"),
    ("228", "TG"),
    ("229", "BJ"),
    ("230", "MU"),
    ("231", "LR"),
    ("232", "SL"),
    ("233", "GH"),
    ("234", "NG"),
    ("235", "TD"),
    ("236", "CF"),
    ("237", "CM"),
    ("238", "CV"),
    ("239", "ST"),
    ("240", "GQ"),
    ("241", "GA"),
    ("242", "CG"),
    ("243", "CD"),
    ("244", "AO"),
    ("245", "GW"),
    ("246", "IO"),
    ("247", "SH"),
    ("248", "SC"),
    ("249", "SD"),
    ("250", "RW"),
    ("251", "ET"),
    ("252", "SO"),
    ("253", "DJ"),
    ("254", "KE"),
    ("255", "TZ"),
    ("256", "UG"),
    ("257", "BI"),
    ("258", "MZ"),
    ("260", "ZM"),
    ("261", "MG"),
    ("262", "RE"),
    ("262269", "YT"),
    ("262639", "YT"),
    ("263", "ZW"),
    ("264", "NA"),
    ("265", "MW"),
    ("266", "LS"),
    ("267", "BW"),
    ("268", "SZ"),
    ("269", "KM"),
    ("27", "ZA"),
    ("290", "SH"),
    ("291", "ER"),
    ("297", "AW"),
    ("298", "FO"),
    ("299", "GL"),
    // Zones 3 and 4: Europe.
    ("30", "GR"),
    ("31", "NL"),
    ("32", "BE"),
    ("33", "FR"),
    ("34", "ES"),
    ("350", "GI"),
    ("351", "PT"),
    ("352", "LU"),
    ("353", "IE"),
    ("354", "IS"),
    ("355", "AL"),
    ("356", "MT"),
    ("357", "CY"),
    ("358", "FI"),
    ("35818", "AX"),
    ("359", "BG"),
    ("36", "HU"),
    ("370", "LT"),
    ("371", "LV"),
    ("372", "EE"),
    ("373", "MD"),
    ("374", "AM"),
    ("375", "BY"),
    ("376", "AD"),
    ("377", "MC"),
    ("378", "SM"),
    ("380", "UA"),
    ("381", "RS"),
    ("382", "ME"),
    ("383", "XK"),
    ("385", "HR"),
    ("386", "SI"),
    ("387", "BA"),
    ("389", "MK"),
    ("39", "IT"),
    ("3906698", "VA"),
    ("40", "RO"),
    ("41", "CH"),
    ("420", "CZ"),
    ("421", "SK"),
    ("423", "LI"),
    ("43", "AT"),
    ("44", "GB"),
    ("441481", "GG"),
    ("441534", "JE"),
    ("441624", "IM"),
    ("45", "DK"),
    ("46", "SE"),
    ("47", "NO"),
    ("4779", "SJ"),
    ("48", "PL"),
    ("49", "DE"),
    // Zone 5: the Americas outside NANP.
    ("500", "FK"),
    ("501", "BZ"),
    ("502", "GT"),
    ("503", "SV"),
    ("504", "HN"),
    ("505", "NI"),
    ("506", "CR"),
    ("507", "PA"),
    ("508", "PM"),
    ("509", "HT"),
    ("51", "PE"),
    ("52", "MX"),
    ("53", "CU"),
    ("54", "AR"),
    ("55", "BR"),
    ("56", "CL"),
    ("57", "CO"),
    ("58", "VE"),
    ("590", "GP"),
    ("591", "BO"),
    ("592", "GY"),
    ("593", "EC"),
    ("594", "GF"),
    ("595", "PY"),
    ("596", "MQ"),
    ("597", "SR"),
    ("598", "UY"),
    ("599", "CW"),
    ("5993", "BQ"),
    ("5994", "BQ"),
    ("5997", "BQ"),
    // Zone 6: South-East Asia and Oceania.
    ("60", "MY"),
    ("61", "AU"),
    ("62", "ID"),
    ("63", "PH"),
    ("64", "NZ"),
    ("65", "SG"),
    ("66", "TH"),
    ("670", "TL"),
    ("672", "NF"),
    ("673", "BN"),
    ("674", "NR"),
    ("675", "PG"),
    ("676", "TO"),
    ("677", "SB"),
    ("678", "VU"),
    ("679", "FJ"),
    ("680", "PW"),
    ("681", "WF"),
    ("682", "CK"),
    ("683", "NU"),
    ("685", "WS"),
    ("686", "KI"),
    ("687", "NC"),
    ("688", "TV"),
    ("689", "PF"),
    ("690", "TK"),
    ("691", "FM"),
    ("692", "MH"),
    // Zone 7: Russia and Kazakhstan.
    ("7", "RU"),
    ("76", "KZ"),
    ("77", "KZ"),
    // Zone 8: East Asia.
    ("81", "JP"),
    ("82", "KR"),
    ("84", "VN"),
    ("850", "KP"),
    ("852", "HK"),
    ("853", "MO"),
    ("855", "KH"),
    ("856", "LA"),
    ("86", "CN"),
    ("880", "BD"),
    ("886", "TW"),
    // Zone 9: West, Central and South Asia.
    ("90", "TR"),
    ("91", "IN"),
    ("92", "PK"),
    ("93", "AF"),
    ("94", "LK"),
    ("95", "MM"),
    ("960", "MV"),
    ("961", "LB"),
    ("962", "JO"),
    ("963", "SY"),
    ("964", "IQ"),
    ("965", "KW"),
    ("966", "SA"),
    ("967", "YE"),
    ("968", "OM"),
    ("970", "PS"),
    ("971", "AE"),
    ("972", "IL"),
    ("973", "BH"),
    ("974", "QA"),
    ("975", "BT"),
    ("976", "MN"),
    ("977", "NP"),
    ("98", "IR"),
    ("992", "TJ"),
    ("993", "TM"),
    ("994", "AZ"),
    ("995", "GE"),
    ("996", "KG"),
    ("998", "UZ"),
];

/// The longest table prefix: an NANP area code or a shared code's sub-prefix is 7 digits at most.
const MAX_PREFIX: usize = 7;

/// The country of `number` when it is E.164 (`+` then 1–15 digits) and its calling code belongs to
/// one; `None` for extensions, names and non-geographic codes.
pub fn country_of(number: &str) -> Option<&'static str> {
    let digits = number.strip_prefix('+')?;
    if digits.is_empty() || digits.len() > 15 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    (1..=digits.len().min(MAX_PREFIX)).rev().find_map(|n| {
        let prefix = digits.get(..n)?;
        CODES
            .iter()
            .find(|(p, _)| *p == prefix)
            .map(|(_, country)| *country)
    })
}

/// A report filter or API value as stored: two ASCII letters, upper case (`br` → `BR`).
pub fn normalize(code: &str) -> Option<String> {
    let code = code.trim();
    (code.len() == 2 && code.bytes().all(|b| b.is_ascii_alphabetic()))
        .then(|| code.to_ascii_uppercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_numbers_of_the_flows_get_their_country() {
        assert_eq!(country_of("+551130000000"), Some("BR"));
        assert_eq!(country_of("+541150000000"), Some("AR"));
        assert_eq!(country_of("+351210000000"), Some("PT"));
        assert_eq!(country_of("+12125550100"), Some("US"));
        assert_eq!(country_of("+442071234567"), Some("GB"));
        assert_eq!(country_of("+4930123456"), Some("DE"));
        assert_eq!(country_of("+5511988887777"), Some("BR"), "a mobile");
    }

    #[test]
    fn extensions_names_and_malformed_numbers_have_no_country() {
        for n in [
            "7000",
            "",
            "+",
            "ana",
            "551130000000",
            "+55 11 3000-0000",
            "+5511300000000000", // 16 digits: longer than E.164 allows
            "+80012345678",      // international freephone: no country
            "+8821234567",       // satellite/international networks
            "+2101234567",       // unassigned in zone 2
            "++551130000000",
            "+٥٥١١", // non-ASCII digits
        ] {
            assert_eq!(country_of(n), None, "{n:?}");
        }
    }

    #[test]
    fn shared_codes_go_by_their_longest_prefix() {
        assert_eq!(country_of("+14165550100"), Some("CA"), "Toronto 416");
        assert_eq!(country_of("+16045550100"), Some("CA"), "Vancouver 604");
        assert_eq!(country_of("+18765550100"), Some("JM"));
        assert_eq!(country_of("+17875550100"), Some("PR"));
        assert_eq!(country_of("+13055550100"), Some("US"), "Miami 305");
        assert_eq!(country_of("+1"), Some("US"), "NANP with no area code yet");
        assert_eq!(country_of("+74951234567"), Some("RU"), "Moscow");
        assert_eq!(country_of("+77172123456"), Some("KZ"), "Astana");
        assert_eq!(country_of("+77011234567"), Some("KZ"), "a Kazakh mobile");
        assert_eq!(country_of("+441534123456"), Some("JE"));
        assert_eq!(country_of("+390669812345"), Some("VA"));
        assert_eq!(country_of("+390612345678"), Some("IT"));
        assert_eq!(country_of("+262269612345"), Some("YT"));
        assert_eq!(country_of("+262262123456"), Some("RE"));
    }

    #[test]
    fn the_table_is_well_formed() {
        let mut seen = std::collections::HashSet::new();
        for (prefix, country) in CODES {
            assert!(seen.insert(*prefix), "{prefix} listed twice");
            assert!(
                !prefix.is_empty()
                    && prefix.len() <= MAX_PREFIX
                    && prefix.bytes().all(|b| b.is_ascii_digit()),
                "{prefix}"
            );
            assert_eq!(normalize(country).as_deref(), Some(*country), "{country}");
        }
    }

    #[test]
    fn filters_are_two_letters_in_any_case() {
        assert_eq!(normalize("br").as_deref(), Some("BR"));
        assert_eq!(normalize(" Pt ").as_deref(), Some("PT"));
        for bad in ["", "B", "BRA", "B1", "+55", "ÁR"] {
            assert_eq!(normalize(bad), None, "{bad:?}");
        }
    }
}
