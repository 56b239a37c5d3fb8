//! Minimal HTML helpers shared by reports and the dashboard (no templates, no scripts).

/// Escape text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for ch in text.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The style sheet of every page.
pub const STYLE: &str = "body{font-family:system-ui,-apple-system,'Segoe UI',Roboto,sans-serif;margin:0;color:#1b2330;background:#f4f6f9}\
header{background:#12233f;color:#fff;padding:14px 28px}header h1{margin:0;font-size:22px}header p{margin:4px 0 0;color:#b9c6dc;font-size:13px}\
main{padding:18px 28px;max-width:1300px}section{background:#fff;border:1px solid #d9dee7;border-radius:8px;padding:14px 18px;margin-bottom:18px}\
h2{font-size:17px;margin:0 0 10px}table{border-collapse:collapse;width:100%;font-size:13px}th,td{text-align:left;padding:6px 8px;border-bottom:1px solid #e5e8ee;vertical-align:top}\
th{background:#eef1f6;font-weight:600}.ok{color:#0a7a33;font-weight:600}.warn{color:#a35d00;font-weight:600}.bad{color:#b3161b;font-weight:700}\
.pill{display:inline-block;padding:1px 8px;border-radius:10px;font-size:12px;font-weight:600}.pill.major{background:#fde2e2;color:#9b1116}.pill.minor{background:#e4f2e8;color:#17622f}.pill.sim{background:#e7ecf7;color:#27407a}\
.muted{color:#687386;font-size:12px}code{font-size:12px}";

/// A whole page.
pub fn page(title: &str, subtitle: &str, body: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t}</title><style>{STYLE}</style></head>\
<body><header><h1>{t}</h1><p>{s}</p></header><main>{body}</main></body></html>\n",
        t = escape(title),
        s = escape(subtitle),
    )
}

/// A table with a header row; cells are HTML already escaped by the caller.
pub fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut out = String::from("<table><thead><tr>");
    for h in headers {
        out.push_str(&format!("<th>{}</th>", escape(h)));
    }
    out.push_str("</tr></thead><tbody>");
    for row in rows {
        out.push_str("<tr>");
        for cell in row {
            out.push_str(&format!("<td>{cell}</td>"));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
    out
}
