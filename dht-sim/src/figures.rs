//! What the figure-making examples share (`examples/chord_figures.rs`,
//! `examples/n_sweep.rs`, `examples/retention.rs`): a hand-written SVG line plot (a few elements need no
//! plotting crate) and where results go (`dht-sim/results/`).

use std::fmt::Write as _;

/// One line of a plot.
#[derive(Clone, Debug)]
pub struct Series {
    /// Its legend.
    pub name: &'static str,
    /// Its colour (any SVG colour).
    pub color: &'static str,
    /// (x, y, low, high): a bar spans low to high (equal to y for none).
    pub points: Vec<(f64, f64, f64, f64)>,
}

/// A line plot: x on a log2 or linear axis, one polyline per series, optional error bars.
pub fn svg(title: &str, xlabel: &str, ylabel: &str, log_x: bool, series: &[Series]) -> String {
    let (w, h, m) = (640.0, 400.0, 60.0);
    let fx = |x: f64| if log_x { x.log2() } else { x };
    let all: Vec<&(f64, f64, f64, f64)> = series.iter().flat_map(|s| &s.points).collect();
    let x0 = all.iter().map(|p| fx(p.0)).fold(f64::MAX, f64::min);
    let x1 = all.iter().map(|p| fx(p.0)).fold(f64::MIN, f64::max);
    let y1 = all.iter().map(|p| p.3.max(p.1)).fold(0.0, f64::max) * 1.1;
    let px = |x: f64| m + (fx(x) - x0) / (x1 - x0).max(1e-9) * (w - 2.0 * m);
    let py = |y: f64| h - m - y / y1.max(1e-9) * (h - 2.0 * m);
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n<text x=\"{}\" y=\"20\" text-anchor=\"middle\">{title}</text>\n<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{xlabel}</text>\n<text x=\"15\" y=\"{}\" transform=\"rotate(-90 15 {})\" text-anchor=\"middle\">{ylabel}</text>\n<line x1=\"{m}\" y1=\"{}\" x2=\"{}\" y2=\"{}\" stroke=\"black\"/>\n<line x1=\"{m}\" y1=\"{m}\" x2=\"{m}\" y2=\"{}\" stroke=\"black\"/>\n",
        w / 2.0, w / 2.0, h - 15.0, h / 2.0, h / 2.0, h - m, w - m, h - m, h - m
    );
    // Enough decimals that the six ticks differ (failure rates are near 0.01).
    let decimals = if y1 < 0.1 {
        3
    } else if y1 < 1.0 {
        2
    } else {
        1
    };
    for k in 0..=5 {
        let y = y1 * k as f64 / 5.0;
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"end\">{y:.decimals$}</text>",
            m - 5.0,
            py(y) + 4.0
        );
    }
    for p in series.first().map(|s| s.points.as_slice()).unwrap_or(&[]) {
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">{}</text>",
            px(p.0),
            h - m + 15.0,
            p.0
        );
    }
    for (k, ser) in series.iter().enumerate() {
        let pts: Vec<String> = ser
            .points
            .iter()
            .map(|p| format!("{:.1},{:.1}", px(p.0), py(p.1)))
            .collect();
        let _ = writeln!(
            s,
            "<polyline fill=\"none\" stroke=\"{}\" stroke-width=\"2\" points=\"{}\"/>",
            ser.color,
            pts.join(" ")
        );
        for p in &ser.points {
            let _ = writeln!(
                s,
                "<line x1=\"{0:.1}\" x2=\"{0:.1}\" y1=\"{1:.1}\" y2=\"{2:.1}\" stroke=\"{3}\"/>",
                px(p.0),
                py(p.2),
                py(p.3),
                ser.color
            );
        }
        let _ = writeln!(
            s,
            "<text x=\"{}\" y=\"{}\" fill=\"{}\">{}</text>",
            m + 10.0,
            m + 15.0 * k as f64,
            ser.color,
            ser.name
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Writes `results/<name>.md` and `results/<name>.svg` under dht-sim's directory.
pub fn write(name: &str, md: &str, plot: &str) -> std::io::Result<()> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("results");
    std::fs::create_dir_all(&dir)?;
    std::fs::write(dir.join(format!("{name}.md")), md)?;
    std::fs::write(dir.join(format!("{name}.svg")), plot)?;
    eprintln!("wrote results/{name}.md and .svg");
    Ok(())
}
