//! The dense numeric path: burn tensor ops (the reference) against the row transform on the
//! CPU, and the fused CubeCL kernel against the reference on wgpu (lavapipe in CI).

use std::fmt::Write;

use burn::backend::flex::FlexDevice;
use burn::backend::ndarray::NdArrayDevice;
use burn::backend::wgpu::WgpuDevice;
use burn::tensor::{Tensor, TensorData};
use kiln_core::backend::{FlexBackend, NdArrayBackend, WgpuBackend};
use kiln_data::{CsvOptions, Table, infer_schema, read_csv};
use kiln_transform::{DenseNumeric, FeatureConfig, FeaturePlan, FittedFeatures};

fn fitted() -> (Table, FittedFeatures, Vec<usize>) {
    // Three numeric columns with gaps; `b` is clipped at its train 10% / 90% quantiles.
    let mut text = String::from("a,b,c\n");
    for i in 0..300_u32 {
        let a = if i % 7 == 0 {
            "NA".to_owned()
        } else {
            f64::from(i).sqrt().to_string()
        };
        let b = if i % 11 == 3 {
            "NA".to_owned()
        } else {
            (f64::from(i % 37) * 1.5 - 20.0).to_string()
        };
        let c = f64::from(i * i % 101) / 7.0;
        writeln!(text, "{a},{b},{c}").unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("dense.csv");
    fs_err::write(&path, text).unwrap();
    let raw = read_csv(&path, &CsvOptions::default()).unwrap();
    let schema = infer_schema(&raw, 1000, &std::collections::BTreeMap::new()).unwrap();
    let table = raw.conform(&schema, &[]).unwrap();
    let config: FeatureConfig =
        toml::from_str("[columns.b]\nclip = { quantiles = [0.1, 0.9] }").unwrap();
    let train: Vec<usize> = (0..200).collect();
    let fitted = FeaturePlan::new(table.schema(), &[], config)
        .fit(&table, &train)
        .unwrap();
    (table, fitted, (0..300).collect())
}

fn values<B: burn::tensor::backend::Backend>(t: Tensor<B, 2>) -> Vec<f32> {
    t.into_data().to_vec::<f32>().unwrap()
}

#[track_caller]
fn assert_close(a: &[f32], b: &[f32], tolerance: f32) {
    assert_eq!(a.len(), b.len());
    let worst = a
        .iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0.0_f32, f32::max);
    assert!(worst <= tolerance, "max |diff| {worst} > {tolerance}");
}

fn input<B: burn::tensor::backend::Backend>(
    dense: &DenseNumeric,
    table: &Table,
    rows: &[usize],
    device: &B::Device,
) -> Tensor<B, 2> {
    let raw = dense.raw(table, rows).unwrap();
    Tensor::from_data(TensorData::new(raw.data, [raw.rows, raw.cols]), device)
}

#[test]
fn tensor_ops_match_the_row_transform_on_cpu_backends() {
    let (table, fitted, rows) = fitted();
    let dense = DenseNumeric::of(&fitted).expect("plain numeric columns");
    let expected = fitted.transform(&table, &rows).unwrap().data;
    assert!(expected.iter().all(|v| v.is_finite()));
    let device = NdArrayDevice::default();
    let x = input::<NdArrayBackend>(&dense, &table, &rows, &device);
    assert_close(&values(dense.apply(x)), &expected, 1e-5);
    let x = input::<FlexBackend>(&dense, &table, &rows, &FlexDevice);
    assert_close(&values(dense.apply(x)), &expected, 1e-5);
}

#[test]
fn fused_kernel_matches_tensor_ops_on_wgpu() {
    let (table, fitted, rows) = fitted();
    let dense = DenseNumeric::of(&fitted).unwrap();
    let device = WgpuDevice::default();
    let x = input::<WgpuBackend>(&dense, &table, &rows, &device);
    let reference = values(dense.reference(x.clone()));
    let fused = values(dense.apply(x.clone()));
    assert_close(&fused, &reference, 1e-5);
    assert_close(&fused, &fitted.transform(&table, &rows).unwrap().data, 1e-5);
    // A transposed (strided) input is made contiguous first.
    let transposed = x.transpose().transpose();
    assert_close(&values(dense.apply(transposed)), &reference, 1e-5);
}

#[test]
fn only_plain_numeric_columns_take_the_dense_path() {
    let (table, _, _) = fitted();
    let config: FeatureConfig = toml::from_str("numeric = { log1p = true }").unwrap();
    let fitted = FeaturePlan::new(table.schema(), &["b"], config)
        .fit(&table, &[0, 1, 2])
        .unwrap();
    assert!(DenseNumeric::of(&fitted).is_none());
}
