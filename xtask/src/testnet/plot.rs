//! `latency.svg`: the latency distribution of the successful operations, one line per
//! operation type, written by hand (a few SVG elements need no plotting crate).

use std::fmt::Write as _;

use dht_measure::workload::{OpKind, OpRecord};

use super::TestnetConfig;

/// A cumulative distribution of the successful operations' latency, one line per operation
/// type, on a log-scaled axis (DHT latencies span sub-millisecond hits to multi-second
/// timeouts).
pub(super) fn latency_svg(config: &TestnetConfig, ops: &[OpRecord]) -> String {
    const W: f64 = 860.0;
    const H: f64 = 480.0;
    const LEFT: f64 = 70.0;
    const RIGHT: f64 = 190.0;
    const TOP: f64 = 50.0;
    const BOTTOM: f64 = 60.0;
    const COLOURS: [&str; 6] = [
        "#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    ];
    let series: Vec<(&str, Vec<f64>)> = OpKind::ALL
        .iter()
        .map(|&k| {
            let mut v: Vec<f64> = ops
                .iter()
                .filter(|o| o.ok && o.op == k)
                .map(|o| (o.latency_us.max(1) as f64) / 1000.0)
                .collect();
            v.sort_by(f64::total_cmp);
            (k.name(), v)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect();
    let lo = series
        .iter()
        .filter_map(|(_, v)| v.first().copied())
        .fold(f64::INFINITY, f64::min);
    let hi = series
        .iter()
        .filter_map(|(_, v)| v.last().copied())
        .fold(0.0, f64::max);
    // Whole decades around the data, so the ticks are 0.1, 1, 10, ... ms.
    let (d0, d1) = if series.is_empty() {
        (-1.0, 3.0)
    } else {
        (
            lo.log10().floor(),
            hi.log10().ceil().max(lo.log10().floor() + 1.0),
        )
    };
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |ms: f64| LEFT + (ms.log10() - d0) / (d1 - d0) * pw;
    let y = |frac: f64| TOP + (1.0 - frac) * ph;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{W}\" height=\"{H}\" \
         font-family=\"sans-serif\" font-size=\"12\">"
    );
    let _ = writeln!(s, "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>");
    let _ = writeln!(
        s,
        "<text x=\"{LEFT}\" y=\"24\" font-size=\"15\">Latency of successful operations (CDF): \
         {}</text>",
        config.title()
    );
    for d in (d0 as i32)..=(d1 as i32) {
        let ms = 10f64.powi(d);
        let px = x(ms);
        let label = if d < 0 {
            format!("{ms}")
        } else {
            format!("{}", ms as u64)
        };
        let _ = writeln!(
            s,
            "<line x1=\"{px:.1}\" y1=\"{TOP}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            TOP + ph,
            TOP + ph + 18.0
        );
    }
    for i in 0..=4 {
        let frac = i as f64 / 4.0;
        let py = y(frac);
        let _ = writeln!(
            s,
            "<line x1=\"{LEFT}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{}%</text>",
            LEFT + pw,
            LEFT - 6.0,
            py + 4.0,
            (frac * 100.0) as u32
        );
    }
    let _ = writeln!(
        s,
        "<rect x=\"{LEFT}\" y=\"{TOP}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>\
         <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">latency, ms (log scale)</text>\
         <text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">\
         operations at or below</text>",
        LEFT + pw / 2.0,
        H - 16.0,
        TOP + ph / 2.0,
        TOP + ph / 2.0
    );
    for (n, (kind, v)) in series.iter().enumerate() {
        let colour = COLOURS[n % COLOURS.len()];
        // At most ~400 points per line: enough for the eye, small enough for the file.
        let step = (v.len() / 400).max(1);
        let mut points = String::new();
        for (i, ms) in v.iter().enumerate() {
            if i % step == 0 || i + 1 == v.len() {
                let _ = write!(
                    points,
                    "{:.1},{:.1} ",
                    x(*ms),
                    y((i + 1) as f64 / v.len() as f64)
                );
            }
        }
        let ly = TOP + 10.0 + 20.0 * n as f64;
        let lx = LEFT + pw + 14.0;
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{colour}\" stroke-width=\"1.8\" points=\"{}\"/>\
             <line x1=\"{lx:.1}\" y1=\"{ly:.1}\" x2=\"{:.1}\" y2=\"{ly:.1}\" stroke=\"{colour}\" \
             stroke-width=\"3\"/><text x=\"{:.1}\" y=\"{:.1}\">{kind} ({})</text>",
            points.trim_end(),
            lx + 18.0,
            lx + 24.0,
            ly + 4.0,
            v.len()
        );
    }
    s.push_str("</svg>\n");
    s
}
