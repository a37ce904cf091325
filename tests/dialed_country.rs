//! Issue 5 item 5: one flow owns a Brazilian DID, an Argentine DID and an extension. Real calls to
//! each leave records with the dialed number's country, and the report narrows to one country.

mod common;

use common::reports::{csv_rows, get_csv};
use common::*;

const FLOW: &str = r##"
flow: local-numbers
numbers: ["+551130000000", "+541150000000", "7000"]
language: en
start: sales
steps:
  sales:
    queue: { name: sales, timeout: 1s }
    on_timeout: goodbye
  goodbye:
    play: goodbye
    next: hangup
"##;

const BR: &str = "+551130000000";
const AR: &str = "+541150000000";

/// Calls `number`; nobody answers the queue, so after its 1 s the server says goodbye and hangs up.
fn call(server: &Server, number: &str) -> serde_json::Value {
    let mut phone = Phone::udp(server);
    phone.call(number, CALLER).must();
    phone.wait_for_bye(secs(20)).must();
    wait_call_record(server, phone.call_id(), secs(10))
}

/// `country` and `offered` of the first CSV row (the all-queues row of the only day).
fn first_row(csv: &str) -> (String, String) {
    let rows = csv_rows(csv);
    let first = rows.first().unwrap_or_else(|| panic!("no CSV rows: {csv}"));
    let cell = |name: &str| first.get(name).cloned().unwrap_or_default();
    (cell("country"), cell("offered"))
}

fn offered(report: &serde_json::Value) -> u64 {
    report["totals"]["offered"].as_u64().unwrap_or(u64::MAX)
}

#[test]
fn each_did_records_its_country_and_the_report_filters_by_it() {
    let server = Server::start(
        ServerOpts::new()
            .flow("local-numbers", FLOW)
            .config("queues:\n  - name: sales\n"),
    );
    let br = call(&server, BR);
    let ar = call(&server, AR);
    let ext = call(&server, "7000");
    assert_eq!(
        (field(&br, "to"), field(&br, "country")),
        (BR, "BR"),
        "{br}"
    );
    assert_eq!(
        (field(&ar, "to"), field(&ar, "country")),
        (AR, "AR"),
        "{ar}"
    );
    assert!(
        ext.get("country").is_some_and(|c| c.is_null()),
        "an extension has no country, shown as null: {ext}"
    );

    let (status, all) = http_get_json(&server, "/api/reports?interval=1d");
    assert_eq!((status, offered(&all)), (200, 3), "{all}");
    // Any case is accepted and the rows say which country they are for.
    let (status, rep) = http_get_json(&server, "/api/reports?interval=1d&country=br");
    assert_eq!((status, offered(&rep)), (200, 1), "{rep}");
    assert_eq!(rep["totals"]["country"], "BR", "{rep}");
    assert_eq!(rep["totals"]["timed_out"], 1, "{rep}");
    let (_, rep) = http_get_json(&server, "/api/reports?interval=1d&country=AR");
    assert_eq!(offered(&rep), 1, "{rep}");
    let (_, rep) = http_get_json(&server, "/api/reports?interval=1d&country=PT");
    assert_eq!(offered(&rep), 0, "{rep}");

    let (status, body) = http_get_json(&server, "/api/reports?country=Brazil");
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("ISO 3166"), "{body}");

    let (status, csv) = get_csv(
        server.http,
        "/api/reports?interval=1d&country=AR",
        common::http::API_TOKEN,
    )
    .must();
    assert_eq!(status, 200, "{csv}");
    assert_eq!(first_row(&csv), ("AR".into(), "1".into()), "{csv}");

    // The command line reads the same store (the server's SQLite file, open in WAL mode).
    let cli = |args: &[&str]| {
        let data = server.data_dir();
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_switchboard"))
            .arg("report")
            .arg("--data")
            .arg(&data)
            .args(["--interval", "1d"])
            .args(args)
            .current_dir(data.parent().unwrap_or(&data))
            .output()
            .expect("run switchboard report");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        (
            out.status.success(),
            text,
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (ok, csv, err) = cli(&["--country", "ar", "--format", "csv"]);
    assert!(ok, "{err}");
    assert_eq!(first_row(&csv), ("AR".into(), "1".into()), "{csv}");
    let (ok, table, err) = cli(&["--country", "BR"]);
    assert!(ok && table.starts_with("country BR\n"), "{table}{err}");
    let (ok, _, err) = cli(&["--country", "+55"]);
    assert!(!ok && err.contains("ISO 3166"), "{err}");
}
