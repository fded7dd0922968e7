//! Draws BENCHMARKS.md's figure from the load script's results file.
//!
//! Usage: `plot RESULTS_TSV OUT_SVG`. Rows used (tab-separated, as `bench/load.sh` writes them):
//! `conn  N  rps  p50_us  p99_us` (verify at N connections) and
//! `keys  N  rps  p50_us  p99_us  rss_kib` (verify over N stored and cached keys).
#![forbid(unsafe_code)]

use anyhow::Context as _;
use plotters::prelude::*;

struct Row {
    x: f64,
    rps: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mib: f64,
}

fn rows(text: &str, kind: &str) -> Vec<Row> {
    let mut rows: Vec<Row> = text
        .lines()
        .map(|l| l.split('\t').collect::<Vec<_>>())
        .filter(|f| f.first() == Some(&kind) && f.len() >= 5)
        .filter_map(|f| {
            let num = |i: usize| f.get(i).and_then(|v| v.trim().parse::<f64>().ok());
            Some(Row {
                x: num(1)?,
                rps: num(2)?,
                p50_ms: num(3)? / 1000.0,
                p99_ms: num(4)? / 1000.0,
                rss_mib: num(5).unwrap_or(0.0) / 1024.0,
            })
        })
        .collect();
    // Lines join points in x order, whatever order the runs were made in.
    rows.sort_by(|a, b| a.x.total_cmp(&b.x));
    rows
}

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [input, output] = args.as_slice() else { anyhow::bail!("usage: plot RESULTS_TSV OUT_SVG") };
    let text = std::fs::read_to_string(input).with_context(|| format!("read {input}"))?;
    let conns = rows(&text, "conn");
    let keys = rows(&text, "keys");
    anyhow::ensure!(!conns.is_empty() && !keys.is_empty(), "{input} has no conn or keys rows");

    let root = SVGBackend::new(output, (1260, 420)).into_drawing_area();
    root.fill(&WHITE)?;
    let panels = root.split_evenly((1, 3));
    let max = |v: &mut dyn Iterator<Item = f64>| v.fold(0.0_f64, f64::max) * 1.15;
    let style = |c: RGBColor| ShapeStyle::from(c).stroke_width(2);

    // 1. verify throughput and p99 against connections.
    let x_max = max(&mut conns.iter().map(|r| r.x));
    let y_max = max(&mut conns.iter().map(|r| r.rps / 1000.0));
    let mut c = ChartBuilder::on(&panels[0])
        .caption("verify: throughput by connections", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    c.configure_mesh().x_desc("connections").y_desc("thousand req/s").draw()?;
    c.draw_series(LineSeries::new(conns.iter().map(|r| (r.x, r.rps / 1000.0)), style(BLUE)))?
        .label("req/s")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], BLUE));
    c.draw_series(conns.iter().map(|r| Circle::new((r.x, r.rps / 1000.0), 4, BLUE.filled())))?;
    c.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;

    // 2. verify latency against connections.
    let y_max = max(&mut conns.iter().map(|r| r.p99_ms));
    let mut c = ChartBuilder::on(&panels[1])
        .caption("verify: latency by connections", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .build_cartesian_2d(0.0..x_max, 0.0..y_max)?;
    c.configure_mesh().x_desc("connections").y_desc("ms").draw()?;
    for (label, color, f) in [("p50", GREEN, (|r: &Row| r.p50_ms) as fn(&Row) -> f64), ("p99", RED, |r: &Row| r.p99_ms)]
    {
        c.draw_series(LineSeries::new(conns.iter().map(|r| (r.x, f(r))), style(color)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
        c.draw_series(conns.iter().map(|r| Circle::new((r.x, f(r)), 4, color.filled())))?;
    }
    c.configure_series_labels().border_style(BLACK).background_style(WHITE).draw()?;

    // 3. latency and memory against stored (and cached) keys, log x.
    let k_min = keys.iter().map(|r| r.x).fold(f64::MAX, f64::min) / 2.0;
    let k_max = max(&mut keys.iter().map(|r| r.x)) * 2.0;
    let lat_max = max(&mut keys.iter().map(|r| r.p99_ms));
    let rss_max = max(&mut keys.iter().map(|r| r.rss_mib));
    let mut c = ChartBuilder::on(&panels[2])
        .caption("verify over N cached keys", ("sans-serif", 18))
        .margin(12)
        .x_label_area_size(36)
        .y_label_area_size(50)
        .right_y_label_area_size(56)
        .build_cartesian_2d((k_min..k_max).log_scale(), 0.0..lat_max)?
        .set_secondary_coord((k_min..k_max).log_scale(), 0.0..rss_max);
    c.configure_mesh().x_desc("keys (log)").y_desc("latency ms").x_label_formatter(&|v| format!("{v:.0}")).draw()?;
    c.configure_secondary_axes().y_desc("RSS MiB").draw()?;
    for (label, color, f) in [("p50", GREEN, (|r: &Row| r.p50_ms) as fn(&Row) -> f64), ("p99", RED, |r: &Row| r.p99_ms)]
    {
        c.draw_series(LineSeries::new(keys.iter().map(|r| (r.x, f(r))), style(color)))?
            .label(label)
            .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], color));
    }
    c.draw_secondary_series(LineSeries::new(keys.iter().map(|r| (r.x, r.rss_mib)), style(MAGENTA)))?
        .label("RSS (right)")
        .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 16, y)], MAGENTA));
    c.configure_series_labels()
        .position(SeriesLabelPosition::UpperLeft)
        .border_style(BLACK)
        .background_style(WHITE)
        .draw()?;

    root.present()?;
    println!("wrote {output}");
    Ok(())
}
