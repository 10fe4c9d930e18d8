//! Datetime columns: calendar parts, cyclic ones as sin/cos pairs.

use std::f64::consts::TAU;

use kiln_data::CivilTime;
use serde::{Deserialize, Serialize};

use crate::config::{DatePart, DatetimeConfig};
use crate::numeric::{mean_variance, median};

/// A fitted datetime column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FittedDatetime {
    /// Column name.
    pub name: String,
    /// Replaces missing values (the train median, µs since the epoch).
    pub fill: i64,
    /// The parts, in output order.
    pub parts: Vec<DatePart>,
    /// Cyclic parts become sin/cos pairs.
    pub cyclic: bool,
    /// Train mean of the year.
    pub year_center: f64,
    /// Train standard deviation of the year (1 when constant).
    pub year_scale: f64,
}

impl FittedDatetime {
    /// Learns the fill and the year's scaling from the train values.
    pub(crate) fn fit(name: &str, config: &DatetimeConfig, present: &[i64]) -> Self {
        #[allow(clippy::cast_precision_loss)] // Timestamps in µs are exact below 2^53 (~285 years).
        let as_f64: Vec<f64> = present.iter().map(|&t| t as f64).collect();
        #[allow(clippy::cast_possible_truncation)] // A median of i64 values.
        let fill = median(&as_f64).round() as i64;
        #[allow(clippy::cast_precision_loss)] // Years are small.
        let years: Vec<f64> = present
            .iter()
            .map(|&t| CivilTime::from_micros(t).year as f64)
            .collect();
        let (year_center, var) = mean_variance(&years);
        Self {
            name: name.to_owned(),
            fill,
            parts: config.parts.clone(),
            cyclic: config.cyclic,
            year_center,
            year_scale: if var > 0.0 { var.sqrt() } else { 1.0 },
        }
    }

    fn part_width(&self, part: DatePart) -> usize {
        if self.cyclic && part.period().is_some() {
            2
        } else {
            1
        }
    }

    /// Output columns.
    pub fn width(&self) -> usize {
        self.parts.iter().map(|&p| self.part_width(p)).sum()
    }

    /// Names of the output columns, e.g. `time_hour.hour_sin`.
    pub fn output_names(&self) -> Vec<String> {
        self.parts
            .iter()
            .flat_map(|&p| {
                let base = format!("{}.{}", self.name, p.as_str());
                if self.part_width(p) == 2 {
                    vec![format!("{base}_sin"), format!("{base}_cos")]
                } else {
                    vec![base]
                }
            })
            .collect()
    }

    /// Writes the parts of `micros` (`None` when missing) into `out[..width]`.
    pub(crate) fn write(&self, micros: Option<i64>, out: &mut [f32]) {
        let t = CivilTime::from_micros(micros.unwrap_or(self.fill));
        let mut at = 0;
        for &part in &self.parts {
            let value = match part {
                DatePart::Year => t.year,
                DatePart::Month => t.month,
                DatePart::Day => t.day,
                DatePart::DayOfWeek => t.weekday,
                DatePart::Hour => t.hour,
                DatePart::Minute => t.minute,
            };
            #[allow(clippy::cast_precision_loss)] // Calendar fields are small.
            let value = value as f64;
            #[allow(clippy::cast_possible_truncation)] // Features are f32.
            match part.period() {
                None => out[at] = ((value - self.year_center) / self.year_scale) as f32,
                Some(period) if self.cyclic => {
                    let angle = TAU * value / period;
                    out[at] = angle.sin() as f32;
                    out[at + 1] = angle.cos() as f32;
                }
                Some(_) => out[at] = value as f32,
            }
            at += self.part_width(part);
        }
    }
}
