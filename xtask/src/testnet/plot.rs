//! `latency.svg`: the latency distribution of the successful operations, one line per
//! operation type, written by hand (a few SVG elements need no plotting crate), and the
//! frame every testnet chart shares ([`Chart`], also `rss.svg`'s).

use std::fmt::Write as _;

use dht_measure::workload::{OpKind, OpRecord};

use super::TestnetConfig;

/// An 860 x 480 chart's plot area, between margins: what every testnet chart draws
/// around its lines.
pub(super) struct Chart {
    pub left: f64,
    pub top: f64,
    /// Plot area width and height.
    pub pw: f64,
    pub ph: f64,
}

impl Chart {
    const W: f64 = 860.0;
    const H: f64 = 480.0;
    const TOP: f64 = 50.0;
    const BOTTOM: f64 = 60.0;

    /// A chart with `left` and `right` margins (the right one holds a legend, if any).
    pub fn new(left: f64, right: f64) -> Chart {
        Chart {
            left,
            top: Self::TOP,
            pw: Self::W - left - right,
            ph: Self::H - Self::TOP - Self::BOTTOM,
        }
    }

    /// The opening tag, a white background and the title.
    pub fn open(&self, s: &mut String, title: &str) {
        let (w, h, left) = (Self::W, Self::H, self.left);
        let _ = writeln!(
            s,
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" \
             font-family=\"sans-serif\" font-size=\"12\">\
             <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\
             <text x=\"{left}\" y=\"24\" font-size=\"15\">{title}</text>"
        );
    }

    /// A horizontal grid line at `py` labelled on the left.
    pub fn y_tick(&self, s: &mut String, py: f64, label: &str) {
        let _ = writeln!(
            s,
            "<line x1=\"{}\" y1=\"{py:.1}\" x2=\"{:.1}\" y2=\"{py:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"end\">{label}</text>",
            self.left,
            self.left + self.pw,
            self.left - 6.0,
            py + 4.0
        );
    }

    /// The plot area's border and both axis titles.
    pub fn frame(&self, s: &mut String, x_title: &str, y_title: &str) {
        let (left, top, pw, ph) = (self.left, self.top, self.pw, self.ph);
        let _ = writeln!(
            s,
            "<rect x=\"{left}\" y=\"{top}\" width=\"{pw}\" height=\"{ph}\" fill=\"none\" stroke=\"#444\"/>\
             <text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{x_title}</text>\
             <text x=\"16\" y=\"{:.1}\" transform=\"rotate(-90 16 {:.1})\" text-anchor=\"middle\">{y_title}</text>",
            left + pw / 2.0,
            Self::H - 16.0,
            top + ph / 2.0,
            top + ph / 2.0
        );
    }
}

/// A cumulative distribution of the successful operations' latency, one line per operation
/// type, on a log-scaled axis (DHT latencies span sub-millisecond hits to multi-second
/// timeouts).
pub(super) fn latency_svg(config: &TestnetConfig, ops: &[OpRecord]) -> String {
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
    let chart = Chart::new(70.0, 190.0);
    let (left, top, pw, ph) = (chart.left, chart.top, chart.pw, chart.ph);
    let x = |ms: f64| left + (ms.log10() - d0) / (d1 - d0) * pw;
    let y = |frac: f64| top + (1.0 - frac) * ph;
    let mut s = String::new();
    chart.open(
        &mut s,
        &format!("Latency of successful operations (CDF): {}", config.title()),
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
            "<line x1=\"{px:.1}\" y1=\"{top}\" x2=\"{px:.1}\" y2=\"{:.1}\" stroke=\"#ddd\"/>\
             <text x=\"{px:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            top + ph,
            top + ph + 18.0
        );
    }
    for i in 0..=4 {
        let frac = i as f64 / 4.0;
        chart.y_tick(&mut s, y(frac), &format!("{}%", (frac * 100.0) as u32));
    }
    chart.frame(&mut s, "latency, ms (log scale)", "operations at or below");
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
        let ly = top + 10.0 + 20.0 * n as f64;
        let lx = left + pw + 14.0;
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
