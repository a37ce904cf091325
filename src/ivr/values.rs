//! Small scalar formats used across flow files: durations, digit ranges, names.
//!
//! Each parser returns `IvrError::Invalid { at, .. }` where `at` is the character index inside
//! the scalar, so the checker can point at the exact column.

use super::IvrError;
use std::time::Duration;

/// The longest duration a flow may ask for: nothing in an IVR waits longer than a day.
pub const MAX_DURATION: Duration = Duration::from_secs(24 * 3600);

fn invalid(at: usize, message: impl Into<String>) -> IvrError {
    IvrError::Invalid {
        at,
        message: message.into(),
    }
}

/// Parses "500ms", "6s", "10m", "1h" and sums like "1m30s".
pub fn parse_duration(text: &str) -> Result<Duration, IvrError> {
    let chars: Vec<char> = text.chars().collect();
    if chars.is_empty() {
        return Err(invalid(
            0,
            "a duration is empty; write it like 6s, 500ms, 10m or 1h",
        ));
    }
    let mut i = 0;
    let mut total = Duration::ZERO;
    while i < chars.len() {
        let start = i;
        let mut n: u64 = 0;
        while let Some(d) = chars.get(i).and_then(|c| c.to_digit(10)) {
            n = n.saturating_mul(10).saturating_add(u64::from(d));
            i += 1;
        }
        if i == start {
            return Err(invalid(
                i,
                format!("`{text}` is not a duration; write it like 6s, 500ms, 10m or 1h"),
            ));
        }
        let unit_start = i;
        while chars.get(i).is_some_and(|c| c.is_ascii_alphabetic()) {
            i += 1;
        }
        let unit: String = chars
            .get(unit_start..i)
            .unwrap_or_default()
            .iter()
            .collect();
        let part = match unit.as_str() {
            "ms" => Duration::from_millis(n),
            "s" => Duration::from_secs(n),
            "m" => Duration::from_secs(n.saturating_mul(60)),
            "h" => Duration::from_secs(n.saturating_mul(3600)),
            "" => {
                return Err(invalid(
                    unit_start,
                    format!("`{text}` needs a unit: ms, s, m or h (for example {n}s)"),
                ))
            }
            other => {
                return Err(invalid(
                    unit_start,
                    format!("`{other}` is not a duration unit; use ms, s, m or h"),
                ))
            }
        };
        total = total.saturating_add(part);
    }
    if total > MAX_DURATION {
        return Err(invalid(0, format!("`{text}` is longer than 24h")));
    }
    Ok(total)
}

/// Renders a duration the way an admin writes it.
pub fn format_duration(d: Duration) -> String {
    let ms = d.as_millis();
    if ms == 0 {
        "0s".to_string()
    } else if ms % 3_600_000 == 0 {
        format!("{}h", ms / 3_600_000)
    } else if ms % 60_000 == 0 {
        format!("{}m", ms / 60_000)
    } else if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else if ms > 1000 {
        format!("{}.{:03}s", ms / 1000, ms % 1000)
    } else {
        format!("{ms}ms")
    }
}

/// The most digits any collect or PIN step may gather.
pub const MAX_DIGITS: usize = 32;

/// Parses "4-8" or "4" (exactly four) into (min, max).
pub fn parse_digit_range(text: &str) -> Result<(usize, usize), IvrError> {
    let bad = || {
        invalid(
            0,
            format!("`{text}` is not a digit count; write MIN-MAX like 4-8, or one number"),
        )
    };
    let (min, max) = match text.split_once('-') {
        Some((a, b)) => (
            a.trim().parse::<usize>().map_err(|_| bad())?,
            b.trim().parse::<usize>().map_err(|_| bad())?,
        ),
        None => {
            let n = text.trim().parse::<usize>().map_err(|_| bad())?;
            (n, n)
        }
    };
    if min > max {
        return Err(invalid(
            0,
            format!("`{text}`: the minimum is above the maximum"),
        ));
    }
    if max == 0 || max > MAX_DIGITS {
        return Err(invalid(
            0,
            format!("`{text}`: the maximum must be between 1 and {MAX_DIGITS}"),
        ));
    }
    Ok((min, max))
}

/// A DTMF key: 0-9, * or #.
pub fn is_dtmf(c: char) -> bool {
    c.is_ascii_digit() || c == '*' || c == '#'
}

/// Step and flow names: letters, digits, `-`, `_` and `.`, at most 64 characters. They end up
/// in CDRs, logs and metrics labels, so they stay plain.
pub fn check_name(text: &str, what: &str) -> Result<(), IvrError> {
    if text.is_empty() || text.chars().count() > 64 {
        return Err(invalid(0, format!("a {what} must have 1 to 64 characters")));
    }
    if let Some((i, c)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')))
    {
        return Err(invalid(
            i,
            format!("a {what} may only use letters, digits, `-`, `_` and `.`, not `{c}`"),
        ));
    }
    Ok(())
}

/// Prompt names are file paths under sounds/ without `.wav`: `welcome`, `digits/4`. They must
/// not climb out of the sounds directory.
pub fn check_prompt_name(text: &str) -> Result<(), IvrError> {
    if text.is_empty() || text.len() > 128 {
        return Err(invalid(0, "a prompt name must have 1 to 128 characters"));
    }
    if let Some((i, c)) = text
        .chars()
        .enumerate()
        .find(|(_, c)| !(c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')))
    {
        return Err(invalid(
            i,
            format!("a prompt name may only use letters, digits, `-`, `_`, `.` and `/`, not `{c}`"),
        ));
    }
    if text
        .split('/')
        .any(|seg| seg.is_empty() || seg == "." || seg == "..")
    {
        return Err(invalid(
            0,
            format!("`{text}` is not a prompt name: use a path inside sounds/ like `menus/main`"),
        ));
    }
    if text.ends_with(".wav") {
        return Err(invalid(
            0,
            format!(
                "write the prompt name without `.wav`: `{}`",
                text.trim_end_matches(".wav")
            ),
        ));
    }
    Ok(())
}

/// Language tags like `en`, `pt-BR`: they become a directory name under sounds/.
pub fn check_language(text: &str) -> Result<(), IvrError> {
    let ok = !text.is_empty()
        && text.len() <= 35
        && text
            .split('-')
            .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric()));
    if ok {
        Ok(())
    } else {
        Err(invalid(
            0,
            format!("`{text}` is not a language tag like en or pt-BR"),
        ))
    }
}

/// Dialed numbers: E.164 (`+5511…`), extensions (`7000`) or SIP user names (`support`).
pub fn check_number(text: &str) -> Result<(), IvrError> {
    if text.is_empty() || text.len() > 64 {
        return Err(invalid(0, "a number must have 1 to 64 characters"));
    }
    if let Some((i, c)) = text.chars().enumerate().find(|(i, c)| {
        !(c.is_ascii_alphanumeric()
            || matches!(c, '*' | '#' | '.' | '_' | '-')
            || (*i == 0 && *c == '+'))
    }) {
        return Err(invalid(
            i,
            format!("`{c}` cannot appear in a dialed number"),
        ));
    }
    Ok(())
}

/// Where a `transfer` step sends the caller.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TransferTarget {
    /// `+` and digits (E.164): dialled through the trunk.
    Number(String),
    /// `sip:user@host[:port][;transport=tcp]`; `addr` is set when the host is an IP literal,
    /// else `hostport` is looked up (A/AAAA; port 5060 when none is given) when dialling.
    Uri {
        uri: String,
        addr: Option<core::net::SocketAddr>,
        hostport: String,
        tcp: bool,
    },
}

/// Reads a transfer target: `+5511912345678` or `sip:operator@192.0.2.10:5060`.
pub fn transfer_target(text: &str) -> Result<TransferTarget, String> {
    let text = text.trim();
    if let Some(digits) = text.strip_prefix('+') {
        if (1..=20).contains(&digits.len()) && digits.chars().all(|c| c.is_ascii_digit()) {
            return Ok(TransferTarget::Number(text.to_string()));
        }
        return Err(format!("`{text}` is not a number like +5511912345678"));
    }
    let lower = text.to_ascii_lowercase();
    if lower.starts_with("sips:") {
        return Err(format!("`{text}`: sips (TLS) is not supported; use sip:"));
    }
    let Some(rest) = lower.starts_with("sip:").then(|| text.get(4..)).flatten() else {
        return Err(format!(
            "`{text}` is neither a SIP URI like sip:operator@192.0.2.10 nor a number like +5511912345678"
        ));
    };
    let (user, after) = rest
        .split_once('@')
        .ok_or_else(|| format!("`{text}` has no user@ before the host"))?;
    let (hostport, params) = after.split_once(';').unwrap_or((after, ""));
    let hostport = hostport.split('?').next().unwrap_or_default();
    if user.is_empty()
        || hostport.is_empty()
        || text.len() > 256
        || text.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(format!(
            "`{text}` is not a SIP URI like sip:operator@192.0.2.10"
        ));
    }
    let addr = hostport
        .parse::<core::net::SocketAddr>()
        .ok()
        .or_else(|| format!("{hostport}:5060").parse().ok())
        .or_else(|| {
            let ip = hostport.parse::<core::net::IpAddr>().ok()?;
            Some(core::net::SocketAddr::new(ip, 5060))
        });
    let tcp = params
        .split(';')
        .any(|p| p.trim().eq_ignore_ascii_case("transport=tcp"));
    Ok(TransferTarget::Uri {
        uri: text.to_string(),
        addr,
        hostport: hostport.to_string(),
        tcp,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transfer_targets_are_numbers_or_sip_uris() {
        assert_eq!(
            transfer_target("+5511912345678"),
            Ok(TransferTarget::Number("+5511912345678".into()))
        );
        assert!(transfer_target("+55 11").is_err());
        assert!(transfer_target("5511912345678").is_err());
        let t = transfer_target("sip:op@192.0.2.10:5070;transport=TCP").unwrap();
        assert_eq!(
            t,
            TransferTarget::Uri {
                uri: "sip:op@192.0.2.10:5070;transport=TCP".into(),
                addr: "192.0.2.10:5070".parse().ok(),
                hostport: "192.0.2.10:5070".into(),
                tcp: true
            }
        );
        let t = transfer_target("sip:op@192.0.2.10").unwrap();
        assert!(
            matches!(t, TransferTarget::Uri { addr: Some(a), tcp: false, .. } if a.port() == 5060)
        );
        let t = transfer_target("sip:op@[::1]").unwrap();
        assert!(matches!(t, TransferTarget::Uri { addr: Some(a), .. } if a.is_ipv6()));
        assert!(matches!(
            transfer_target("sip:operator@pbx.example"),
            Ok(TransferTarget::Uri { addr: None, hostport, .. }) if hostport == "pbx.example"
        ));
        assert!(transfer_target("sips:op@192.0.2.10")
            .unwrap_err()
            .contains("TLS"));
        assert!(transfer_target("sip:192.0.2.10").is_err());
        assert!(transfer_target("operator").is_err());
    }

    fn at(e: IvrError) -> usize {
        match e {
            IvrError::Invalid { at, .. } => at,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn durations_as_admins_write_them() {
        assert_eq!(parse_duration("6s").unwrap(), Duration::from_secs(6));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("10m").unwrap(), Duration::from_secs(600));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("1h").unwrap(), Duration::from_secs(3600));
        assert_eq!(parse_duration("1m30s").unwrap(), Duration::from_secs(90));
    }

    #[test]
    fn malformed_durations_point_at_the_problem() {
        assert_eq!(at(parse_duration("6").unwrap_err()), 1);
        assert_eq!(at(parse_duration("6sec").unwrap_err()), 1);
        assert_eq!(at(parse_duration("s").unwrap_err()), 0);
        assert!(parse_duration("").is_err());
        assert!(parse_duration("25h").is_err());
        assert!(parse_duration("-1s").is_err());
    }

    #[test]
    fn durations_print_back_in_flow_syntax() {
        for s in ["6s", "500ms", "10m", "1h", "0s"] {
            assert_eq!(format_duration(parse_duration(s).unwrap()), s);
        }
        assert_eq!(format_duration(Duration::from_millis(2500)), "2.500s");
    }

    #[test]
    fn digit_ranges() {
        assert_eq!(parse_digit_range("4-8").unwrap(), (4, 8));
        assert_eq!(parse_digit_range("6").unwrap(), (6, 6));
        assert!(parse_digit_range("8-4").is_err());
        assert!(parse_digit_range("0").is_err());
        assert!(parse_digit_range("1-99").is_err());
        assert!(parse_digit_range("a-b").is_err());
    }

    #[test]
    fn names_cannot_escape_or_confuse() {
        assert!(check_name("billing-vip", "step name").is_ok());
        assert_eq!(at(check_name("bad name", "step name").unwrap_err()), 3);
        assert!(check_prompt_name("digits/4").is_ok());
        assert!(check_prompt_name("../etc/passwd").is_err());
        assert!(check_prompt_name("/abs").is_err());
        assert!(check_prompt_name("welcome.wav").is_err());
        assert!(check_language("pt-BR").is_ok());
        assert!(check_language("../en").is_err());
        assert!(check_number("+551130000000").is_ok());
        assert!(check_number("7000").is_ok());
        assert_eq!(at(check_number("55+11").unwrap_err()), 2);
    }
}
