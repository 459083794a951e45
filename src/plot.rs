//! Line charts of named series to PNG, for the benchmark commands.
//!
//! Drawn with plotters' bitmap backend into an RGB buffer and encoded by the `image` crate (the
//! font is DejaVu Sans from the `dejavu` crate, so no system font is needed).

use std::ops::Range;
use std::path::Path;

use plotters::coord::ranged1d::{AsRangedCoord, ValueFormatter};
use plotters::prelude::*;
use plotters::style::FontStyle;

/// One named line: (x, y) points in drawing order.
#[derive(Debug, Clone)]
pub struct Series {
    /// Legend label.
    pub name: String,
    /// (x, y) in the axes' units. Points not finite, or not positive on a log axis, do not count
    /// toward the axis ranges.
    pub points: Vec<(f64, f64)>,
    /// Thin line, for secondary series such as a baseline.
    pub thin: bool,
    /// Line colour; `None` takes the next colour of a fixed palette.
    pub color: Option<(u8, u8, u8)>,
}

/// A chart: title, axis labels, log or linear axes, series.
#[derive(Debug, Clone)]
pub struct LineChart {
    /// Caption drawn above the chart.
    pub title: String,
    /// Description under the x axis (include the unit, e.g. "entries").
    pub x_label: String,
    /// Description beside the y axis (include the unit, e.g. "microseconds").
    pub y_label: String,
    /// Logarithmic x axis (range padded by a factor 1.5 each side) instead of linear (5%).
    pub log_x: bool,
    /// Logarithmic y axis, as `log_x`.
    pub log_y: bool,
    /// The lines, drawn in order; the legend lists them in the upper left.
    pub series: Vec<Series>,
}

/// Why a chart could not be drawn or written.
#[derive(Debug, thiserror::Error)]
pub enum PlotError {
    /// plotters failed (or the DejaVu font could not be registered); its message.
    #[error("drawing failed: {0}")]
    Draw(String),
    /// No point is usable: a line chart with no finite point (positive on a log axis), or a bar
    /// chart with no category or no series.
    #[error("nothing to draw: no finite positive points")]
    Empty,
    /// The PNG could not be encoded or written.
    #[error("writing {path}: {message}")]
    Write {
        /// The output path, as displayed.
        path: String,
        /// The `image` crate's error message.
        message: String,
    },
}

const WIDTH: u32 = 1200;
const HEIGHT: u32 = 800;

impl LineChart {
    /// Renders the chart and writes it as a PNG to `path` (1200 x 800 pixels, RGB).
    ///
    /// Errors: [`PlotError::Empty`] when no point is usable, [`PlotError::Draw`] when plotters
    /// fails, [`PlotError::Write`] when the file cannot be written.
    pub fn write_png(&self, path: &Path) -> Result<(), PlotError> {
        // Registering the same font again is harmless (it replaces the entry).
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| PlotError::Draw("cannot load the DejaVu font".into()))?;
        let (x_range, y_range) = self.ranges()?;
        let mut buf = vec![0u8; (WIDTH * HEIGHT * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (WIDTH, HEIGHT)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_err)?;
            match (self.log_x, self.log_y) {
                (true, true) => self.draw(&root, x_range.log_scale(), y_range.log_scale()),
                (true, false) => self.draw(&root, x_range.log_scale(), y_range),
                (false, true) => self.draw(&root, x_range, y_range.log_scale()),
                (false, false) => self.draw(&root, x_range, y_range),
            }?;
            root.present().map_err(draw_err)?;
        }
        save_png(WIDTH, HEIGHT, buf, path)
    }

    /// Axis ranges covering every point, padded; log axes only see positive values.
    fn ranges(&self) -> Result<(Range<f64>, Range<f64>), PlotError> {
        let usable = |v: f64, log: bool| v.is_finite() && (!log || v > 0.0);
        let points: Vec<(f64, f64)> = self
            .series
            .iter()
            .flat_map(|s| s.points.iter().copied())
            .filter(|&(x, y)| usable(x, self.log_x) && usable(y, self.log_y))
            .collect();
        if points.is_empty() {
            return Err(PlotError::Empty);
        }
        let span = |values: Vec<f64>, log: bool| {
            let lo = values.iter().copied().fold(f64::INFINITY, f64::min);
            let hi = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
            if log {
                (lo / 1.5)..(hi * 1.5)
            } else {
                let pad = ((hi - lo) * 0.05).max(1e-9);
                (lo - pad)..(hi + pad)
            }
        };
        Ok((
            span(points.iter().map(|p| p.0).collect(), self.log_x),
            span(points.iter().map(|p| p.1).collect(), self.log_y),
        ))
    }

    fn draw<X, Y>(
        &self,
        root: &DrawingArea<BitMapBackend<'_>, plotters::coord::Shift>,
        x: X,
        y: Y,
    ) -> Result<(), PlotError>
    where
        X: AsRangedCoord<Value = f64>,
        Y: AsRangedCoord<Value = f64>,
        X::CoordDescType: ValueFormatter<f64>,
        Y::CoordDescType: ValueFormatter<f64>,
    {
        let mut chart = ChartBuilder::on(root)
            .caption(&self.title, ("sans-serif", 30))
            .margin(20)
            .x_label_area_size(60)
            .y_label_area_size(90)
            .build_cartesian_2d(x, y)
            .map_err(draw_err)?;
        chart
            .configure_mesh()
            .x_desc(&self.x_label)
            .y_desc(&self.y_label)
            .label_style(("sans-serif", 18))
            .axis_desc_style(("sans-serif", 22))
            .x_label_formatter(&|v| compact_number(*v))
            .y_label_formatter(&|v| compact_number(*v))
            .draw()
            .map_err(draw_err)?;
        for (i, series) in self.series.iter().enumerate() {
            let color = match series.color {
                Some((r, g, b)) => RGBColor(r, g, b).to_rgba(),
                None => Palette99::pick(i).to_rgba(),
            };
            let width = if series.thin { 1 } else { 3 };
            let style = ShapeStyle {
                color,
                filled: true,
                stroke_width: width,
            };
            chart
                .draw_series(LineSeries::new(series.points.iter().copied(), style))
                .map_err(draw_err)?
                .label(&series.name)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 24, y)], style));
            chart
                .draw_series(series.points.iter().map(|&p| Circle::new(p, 4, style)))
                .map_err(draw_err)?;
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperLeft)
            .label_font(("sans-serif", 18))
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(draw_err)?;
        Ok(())
    }
}

fn draw_err(e: impl std::fmt::Display) -> PlotError {
    PlotError::Draw(e.to_string())
}

/// An axis label: `v` scaled by 1e3 / 1e6 / 1e9 with suffix `k` / `M` / `G`, two decimals with
/// trailing zeros trimmed: 1500 -> "1.5k", 10000000 -> "10M", 0.25 -> "0.25".
pub fn compact_number(v: f64) -> String {
    let a = v.abs();
    let (scaled, suffix) = if a >= 1e9 {
        (v / 1e9, "G")
    } else if a >= 1e6 {
        (v / 1e6, "M")
    } else if a >= 1e3 {
        (v / 1e3, "k")
    } else {
        (v, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{suffix}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn compact_numbers() {
        assert_eq!(compact_number(1500.0), "1.5k");
        assert_eq!(compact_number(10_000_000.0), "10M");
        assert_eq!(compact_number(0.25), "0.25");
        assert_eq!(compact_number(300.0), "300");
    }

    #[test]
    fn writes_a_png() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chart.png");
        let chart = LineChart {
            title: "t".into(),
            x_label: "x".into(),
            y_label: "y".into(),
            log_x: true,
            log_y: true,
            series: vec![Series {
                name: "a".into(),
                points: vec![(1.0, 2.0), (10.0, 30.0)],
                thin: false,
                color: None,
            }],
        };
        chart.write_png(&path).unwrap();
        let img = image::open(&path).unwrap();
        assert_eq!((img.width(), img.height()), (WIDTH, HEIGHT));
        // Something other than background was drawn.
        assert!(img.to_rgb8().pixels().any(|p| p.0 != [255, 255, 255]));
    }
}

/// Horizontal grouped bars: one row per category, one bar per series, values in 0..=`max`.
#[derive(Debug, Clone)]
pub struct BarChart {
    /// Caption drawn above the chart.
    pub title: String,
    /// Description under the value (x) axis, with its unit.
    pub value_label: String,
    /// Row labels, drawn top to bottom in this order.
    pub categories: Vec<String>,
    /// (series name, one value per category).
    pub series: Vec<(String, Vec<f64>)>,
    /// Right end of the value axis; the axis starts at 0.
    pub max: f64,
}

impl BarChart {
    /// Renders the chart and writes it as a PNG to `path`: 1400 pixels wide, 140 pixels plus
    /// `10 + 9 * series` per category high, RGB.
    ///
    /// Errors: [`PlotError::Empty`] when there is no category or no series,
    /// [`PlotError::Draw`] when plotters fails, [`PlotError::Write`] when the file cannot be
    /// written.
    pub fn write_png(&self, path: &Path) -> Result<(), PlotError> {
        plotters::style::register_font("sans-serif", FontStyle::Normal, dejavu::sans::regular())
            .map_err(|_| PlotError::Draw("cannot load the DejaVu font".into()))?;
        if self.categories.is_empty() || self.series.is_empty() {
            return Err(PlotError::Empty);
        }
        let row_h = 10 + 9 * self.series.len() as u32;
        let (width, height) = (1400u32, 140 + row_h * self.categories.len() as u32);
        let mut buf = vec![0u8; (width * height * 3) as usize];
        {
            let root = BitMapBackend::with_buffer(&mut buf, (width, height)).into_drawing_area();
            root.fill(&WHITE).map_err(draw_err)?;
            let n = self.categories.len();
            let mut chart = ChartBuilder::on(&root)
                .caption(&self.title, ("sans-serif", 28))
                .margin(20)
                .x_label_area_size(50)
                .y_label_area_size(260)
                .build_cartesian_2d(0.0..self.max, 0.0..n as f64)
                .map_err(draw_err)?;
            let names = self.categories.clone();
            chart
                .configure_mesh()
                .x_desc(&self.value_label)
                .y_labels(n * 2 + 1)
                .y_label_formatter(&|v| {
                    // Labels sit at row centres (k + 0.5), counted from the top.
                    let k = v - v.floor();
                    if (k - 0.5).abs() < 1e-6 {
                        names
                            .get(n - 1 - v.floor() as usize)
                            .cloned()
                            .unwrap_or_default()
                    } else {
                        String::new()
                    }
                })
                .label_style(("sans-serif", 15))
                .axis_desc_style(("sans-serif", 20))
                .draw()
                .map_err(draw_err)?;
            let k = self.series.len() as f64;
            for (j, (name, values)) in self.series.iter().enumerate() {
                let color = Palette99::pick(j).to_rgba();
                let style = ShapeStyle {
                    color,
                    filled: true,
                    stroke_width: 1,
                };
                chart
                    .draw_series(values.iter().enumerate().map(|(i, &v)| {
                        let row = (n - 1 - i) as f64;
                        let y0 = row + 0.9 - (j as f64 + 1.0) * 0.8 / k;
                        Rectangle::new([(0.0, y0), (v, y0 + 0.8 / k)], style)
                    }))
                    .map_err(draw_err)?
                    .label(name)
                    .legend(move |(x, y)| Rectangle::new([(x, y - 6), (x + 16, y + 6)], style));
            }
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::LowerRight)
                .label_font(("sans-serif", 16))
                .background_style(WHITE.mix(0.9))
                .border_style(BLACK)
                .draw()
                .map_err(draw_err)?;
            root.present().map_err(draw_err)?;
        }
        save_png(width, height, buf, path)
    }
}

/// Writes a drawn RGB buffer as a PNG.
fn save_png(width: u32, height: u32, buf: Vec<u8>, path: &Path) -> Result<(), PlotError> {
    let image = image::RgbImage::from_raw(width, height, buf)
        .ok_or_else(|| PlotError::Draw("buffer size does not match the image".into()))?;
    image
        .save_with_format(path, image::ImageFormat::Png)
        .map_err(|e| PlotError::Write {
            path: path.display().to_string(),
            message: e.to_string(),
        })
}
