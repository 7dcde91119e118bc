//! Grouped bar chart of lingqiao against llama.cpp from bench/compare.py's CSV.
//!
//! `lingqiao-benchchart RESULTS.csv OUT.svg`: one panel per speed test (pp, tg), one group
//! of two bars (lingqiao, llama.cpp) per model and thread count, a log-scale tokens/s axis
//! (the models differ by ten times in speed), each bar labelled with its value and each
//! group with the ratio lingqiao / llama.cpp.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::collections::BTreeMap;
use std::error::Error;

const OURS: &str = "lingqiao";
const THEIRS: &str = "llama.cpp";
const OURS_COLOR: RGBColor = RGBColor(0xd9, 0x5f, 0x02);
const THEIRS_COLOR: RGBColor = RGBColor(0x1b, 0x9e, 0x77);

/// Split one CSV line, honouring double-quoted fields with `""` escapes.
fn split_csv(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match (c, quoted) {
            ('"', true) if chars.peek() == Some(&'"') => {
                cur.push('"');
                chars.next();
            }
            ('"', _) => quoted = !quoted,
            (',', false) => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out
}

/// One bar group: a model at a thread count, with both implementations' mean speed.
#[derive(Default)]
struct Group {
    ours: Option<f64>,
    theirs: Option<f64>,
}

/// test -> ordered (model, threads) -> group, in the CSV's order of first appearance.
type Panels = BTreeMap<String, Vec<((String, u32), Group)>>;

fn read(path: &str) -> Result<(Panels, String), Box<dyn Error>> {
    let text = std::fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header = split_csv(lines.next().ok_or("empty CSV")?);
    let col = |name: &str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| format!("CSV has no column {name:?}"))
    };
    let (c_model, c_threads, c_test, c_unit, c_impl, c_mean) = (
        col("model")?,
        col("threads")?,
        col("test")?,
        col("unit")?,
        col("impl")?,
        col("mean")?,
    );
    let c_cpu = col("cpu").ok();
    let c_date = col("date").ok();
    let mut panels = Panels::new();
    let mut title = String::new();
    for line in lines.filter(|l| !l.trim().is_empty()) {
        let f = split_csv(line);
        let get = |i: usize| f.get(i).map(String::as_str).ok_or("short CSV row");
        if get(c_unit)? != "t/s" {
            continue;
        }
        if title.is_empty() {
            let pick = |c: Option<usize>| c.and_then(|i| f.get(i)).cloned().unwrap_or_default();
            title = format!("{}, {}", pick(c_cpu), pick(c_date));
        }
        let key = (get(c_model)?.to_string(), get(c_threads)?.parse::<u32>()?);
        let mean: f64 = get(c_mean)?.parse()?;
        let groups = panels.entry(get(c_test)?.to_string()).or_default();
        let idx = match groups.iter().position(|(k, _)| *k == key) {
            Some(i) => i,
            None => {
                groups.push((key, Group::default()));
                groups.len() - 1
            }
        };
        match get(c_impl)? {
            OURS => groups[idx].1.ours = Some(mean),
            THEIRS => groups[idx].1.theirs = Some(mean),
            other => return Err(format!("unknown impl {other:?}").into()),
        }
    }
    if panels.is_empty() {
        return Err("no t/s rows in the CSV".into());
    }
    Ok((panels, title))
}

fn draw(panels: &Panels, title: &str, out: &str) -> Result<(), Box<dyn Error>> {
    let n_groups = panels.values().map(Vec::len).max().unwrap_or(1);
    let width = (160 + 150 * n_groups as u32).max(700);
    let root = SVGBackend::new(out, (width, 420 * panels.len() as u32 + 40)).into_drawing_area();
    root.fill(&WHITE)?;
    let (head, body) = root.split_vertically(40);
    head.draw_text(
        &format!(
            "lingqiao vs llama.cpp, tokens/s (log scale; bold: lingqiao / llama.cpp): {title}"
        ),
        &("sans-serif", 18).into_text_style(&head),
        (10, 12),
    )?;
    let areas = body.split_evenly((panels.len(), 1));
    for (area, (test, groups)) in areas.iter().zip(panels) {
        let values = groups
            .iter()
            .flat_map(|(_, g)| [g.ours, g.theirs])
            .flatten();
        let (lo, hi) = values.fold((f64::INFINITY, 0f64), |(lo, hi), v| (lo.min(v), hi.max(v)));
        let (y0, y1) = (
            10f64.powf(lo.max(1e-3).log10().floor()),
            10f64.powf((hi * 1.5).log10().ceil()),
        );
        let n = groups.len();
        let mut chart = ChartBuilder::on(area)
            .caption(test.as_str(), ("sans-serif", 20))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5f64..n as f64 - 0.5, (y0..y1).log_scale())?;
        let label = |x: &f64| {
            let i = x.round();
            if (x - i).abs() > 1e-6 || i < 0.0 || i as usize >= n {
                return String::new();
            }
            let ((model, threads), _) = &groups[i as usize];
            format!("{model}, {threads} thr")
        };
        chart
            .configure_mesh()
            .disable_x_mesh()
            .x_labels(n)
            .x_label_formatter(&label)
            .y_desc("tokens/s")
            .draw()?;
        let bar = |i: usize, left: bool, v: f64, color: RGBColor| {
            let x = i as f64 + if left { -0.36 } else { 0.0 };
            Rectangle::new([(x, y0), (x + 0.36, v)], color.filled())
        };
        for (impl_name, color, left) in [(OURS, OURS_COLOR, true), (THEIRS, THEIRS_COLOR, false)] {
            let series = groups.iter().enumerate().filter_map(|(i, (_, g))| {
                let v = if left { g.ours } else { g.theirs }?;
                Some(bar(i, left, v, color))
            });
            chart
                .draw_series(series)?
                .label(impl_name)
                .legend(move |(x, y)| {
                    Rectangle::new([(x, y - 5), (x + 12, y + 5)], color.filled())
                });
        }
        let above = Pos::new(HPos::Center, VPos::Top);
        let small = TextStyle::from(("sans-serif", 12).into_font()).pos(above);
        let bold =
            TextStyle::from(("sans-serif", 13).into_font().style(FontStyle::Bold)).pos(above);
        for (i, (_, g)) in groups.iter().enumerate() {
            for (v, left) in [(g.ours, true), (g.theirs, false)] {
                if let Some(v) = v {
                    let x = i as f64 + if left { -0.18 } else { 0.18 };
                    chart.draw_series(std::iter::once(
                        EmptyElement::at((x, v))
                            + Text::new(format!("{v:.1}"), (0, -14), small.clone()),
                    ))?;
                }
            }
            if let (Some(o), Some(t)) = (g.ours, g.theirs) {
                chart.draw_series(std::iter::once(
                    EmptyElement::at((i as f64, o.max(t)))
                        + Text::new(format!("{:.2}x", o / t), (0, -32), bold.clone()),
                ))?;
            }
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()?;
    }
    root.present()?;
    Ok(())
}

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().collect();
    let [_, csv, out] = args.as_slice() else {
        return Err("usage: lingqiao-benchchart RESULTS.csv OUT.svg".into());
    };
    let (panels, title) = read(csv)?;
    draw(&panels, &title, out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_fields_with_quotes_and_commas() {
        assert_eq!(
            split_csv(r#"a,"b, c","say ""hi""",,d"#),
            vec!["a", "b, c", r#"say "hi""#, "", "d"]
        );
    }
}
