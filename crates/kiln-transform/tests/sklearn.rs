//! Each transform against scikit-learn 1.9.1 on fixed data. The expected values were computed
//! once with the sklearn call in each test's comment (inputs as in the test) and committed.

// The expected values stay exactly as numpy printed them, so they can be diffed against it.
#![allow(clippy::unreadable_literal)]

use kiln_data::{ColumnType, CsvOptions, Table, infer_schema, read_csv};
use kiln_transform::{FeatureConfig, FeaturePlan, FittedColumn, FittedTarget, TargetKind};

/// `x` has a missing value in row 1.
const NUMERIC: &str = "x\n1.0\nNA\n3.5\n-2.0\n10.0\n0.5\n7.25\n2.0\n";
const ALL: [usize; 8] = [0, 1, 2, 3, 4, 5, 6, 7];

fn table(text: &str) -> Table {
    typed_table(text, &[])
}

fn typed_table(text: &str, types: &[(&str, ColumnType)]) -> Table {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("data.csv");
    fs_err::write(&path, text).unwrap();
    let raw = read_csv(&path, &CsvOptions::default()).unwrap();
    let overrides = types.iter().map(|(n, t)| ((*n).to_owned(), *t)).collect();
    let schema = infer_schema(&raw, 1000, &overrides).unwrap();
    raw.conform(&schema, &[]).unwrap()
}

fn config(toml_text: &str) -> FeatureConfig {
    toml::from_str(toml_text).unwrap()
}

/// Fits on `fit_rows`, transforms `rows`, flattened.
fn run(t: &Table, features: &str, fit_rows: &[usize], rows: &[usize]) -> Vec<f32> {
    FeaturePlan::new(t.schema(), &[], config(features))
        .fit(t, fit_rows)
        .unwrap()
        .transform(t, rows)
        .unwrap()
        .data
}

#[track_caller]
fn assert_close(actual: &[f32], expected: &[f64], tolerance: f64) {
    assert_eq!(actual.len(), expected.len(), "{actual:?} vs {expected:?}");
    for (i, (a, e)) in actual.iter().zip(expected).enumerate() {
        assert!(
            (f64::from(*a) - e).abs() <= tolerance,
            "output {i}: {a} vs sklearn {e}\n{actual:?}"
        );
    }
}

fn numeric(features: &str) -> Vec<f32> {
    run(&table(NUMERIC), features, &ALL, &ALL)
}

#[test]
fn standard_scaler_after_median_imputer() {
    // StandardScaler().fit_transform(SimpleImputer(strategy='median').fit_transform(x))
    let expected = [
        -0.561871, -0.285258, 0.129663, -1.391711, 1.92765, -0.700178, 1.166963, -0.285258,
    ];
    assert_close(&numeric(""), &expected, 1e-5);
}

#[test]
fn mean_imputer_with_missing_indicator() {
    // StandardScaler on SimpleImputer(strategy='mean'), then SimpleImputer(add_indicator=True)'s
    // indicator column.
    let expected = [
        -0.606156, 0.0, 0.0, 1.0, 0.089433, 0.0, -1.440861, 0.0, 1.897962, 0.0, -0.745273, 0.0,
        1.132815, 0.0, -0.32792, 0.0,
    ];
    let out = numeric("numeric = { impute = \"mean\", missing_indicator = true }");
    assert_close(&out, &expected, 1e-5);
}

#[test]
fn constant_imputer() {
    // SimpleImputer(strategy='constant', fill_value=-1.0)
    let expected = [1.0, -1.0, 3.5, -2.0, 10.0, 0.5, 7.25, 2.0];
    let out = numeric("numeric = { impute = \"constant\", fill_value = -1.0, scale = \"none\" }");
    assert_close(&out, &expected, 1e-6);
}

#[test]
fn min_max_robust_and_max_abs_scalers() {
    // MinMaxScaler(), RobustScaler(), MaxAbsScaler() after the median imputer.
    let min_max = [
        0.25, 0.333333, 0.458333, 0.0, 1.0, 0.208333, 0.770833, 0.333333,
    ];
    let robust = [
        -0.280702, 0.0, 0.421053, -1.122807, 2.245614, -0.421053, 1.473684, 0.0,
    ];
    let max_abs = [0.1, 0.2, 0.35, -0.2, 1.0, 0.05, 0.725, 0.2];
    assert_close(
        &numeric("numeric = { scale = \"min_max\" }"),
        &min_max,
        1e-5,
    );
    assert_close(&numeric("numeric = { scale = \"robust\" }"), &robust, 1e-5);
    assert_close(
        &numeric("numeric = { scale = \"max_abs\" }"),
        &max_abs,
        1e-5,
    );
}

#[test]
fn clip_then_log1p() {
    // StandardScaler().fit_transform(np.log1p(np.clip(x_median_imputed, -0.5, None)))
    let expected = [
        -0.418436, 0.023721, 0.465878, -1.930181, 1.440581, -0.732151, 1.126866, 0.023721,
    ];
    let out = numeric("numeric = { clip = { min = -0.5 }, log1p = true }");
    assert_close(&out, &expected, 1e-5);
}

#[test]
fn clip_by_train_quantiles() {
    // StandardScaler on np.clip(x_imp, np.quantile(x_imp, 0.1), np.quantile(x_imp, 0.9))
    let expected = [
        -0.694957, -0.3491, 0.169686, -1.127279, 1.751984, -0.867886, 1.466652, -0.3491,
    ];
    let out = numeric("numeric = { clip = { quantiles = [0.1, 0.9] } }");
    assert_close(&out, &expected, 1e-5);
}

#[test]
fn yeo_johnson_power_transform() {
    // PowerTransformer(method='yeo-johnson') (standardize=True): lambdas_ = [0.7019430267593326]
    let t = table(NUMERIC);
    let fitted = FeaturePlan::new(t.schema(), &[], config("numeric = { power = true }"))
        .fit(&t, &ALL)
        .unwrap();
    let FittedColumn::Numeric(n) = &fitted.columns[0] else {
        panic!()
    };
    let lambda = n.power.unwrap();
    assert!(
        (lambda - 0.701_943_026_759_332_6).abs() < 1e-6,
        "λ = {lambda}"
    );
    let expected = [
        -0.442425, -0.137276, 0.268342, -1.773775, 1.697536, -0.611894, 1.136768, -0.137276,
    ];
    assert_close(&fitted.transform(&t, &ALL).unwrap().data, &expected, 1e-5);
}

#[test]
fn quantile_bins() {
    // KBinsDiscretizer(n_bins=3, encode='onehot-dense', strategy='quantile',
    //                  quantile_method='linear')
    let expected = [
        1.0, 0.0, 0.0, 0.0, 1.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0,
        0.0, 0.0, 1.0, 0.0, 1.0, 0.0,
    ];
    assert_close(&numeric("numeric = { bins = 3 }"), &expected, 0.0);
}

/// Train rows 0..8, then test values a, b, c, d and the unseen z.
const CATEGORIES: &str = "c,y,k\na,10,p\nb,20,q\na,12,p\nc,40,r\na,14,q\nb,22,q\na,16,p\nd,30,r\na,0,p\nb,0,p\nc,0,p\nd,0,p\nz,0,p\n";
const TRAIN: [usize; 8] = ALL;
const TEST: [usize; 5] = [8, 9, 10, 11, 12];

fn categorical(features: &str) -> Vec<f32> {
    let t = table(CATEGORIES);
    FeaturePlan::new(t.schema(), &["y", "k"], config(features))
        .fit(&t, &TRAIN)
        .unwrap()
        .transform(&t, &TEST)
        .unwrap()
        .data
}

#[test]
fn one_hot_with_min_frequency_and_unknowns() {
    // OneHotEncoder(handle_unknown='infrequent_if_exist', min_frequency=2)
    let expected = [1., 0., 0., 0., 1., 0., 0., 0., 1., 0., 0., 1., 0., 0., 1.];
    assert_close(
        &categorical("categorical = { min_frequency = 2 }"),
        &expected,
        0.0,
    );
}

#[test]
fn one_hot_with_max_categories() {
    // OneHotEncoder(handle_unknown='infrequent_if_exist', max_categories=2)
    let expected = [1., 0., 0., 1., 0., 1., 0., 1., 0., 1.];
    assert_close(
        &categorical("categorical = { max_categories = 2 }"),
        &expected,
        0.0,
    );
}

#[test]
fn one_hot_ignoring_unknowns() {
    // OneHotEncoder(handle_unknown='ignore')
    let expected = [
        1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0., 1., 0., 0., 0., 0.,
    ];
    assert_close(
        &categorical("categorical = { unknown = \"zeros\" }"),
        &expected,
        0.0,
    );
}

#[test]
fn ordinal_with_given_order() {
    // OrdinalEncoder(categories=[['d', 'c', 'b', 'a']], handle_unknown='use_encoded_value',
    //                unknown_value=-1)
    let out =
        categorical("[columns.c]\nencode = \"ordinal\"\norder = [\"d\", \"c\", \"b\", \"a\"]");
    assert_close(&out, &[3.0, 2.0, 1.0, 0.0, -1.0], 0.0);
}

#[test]
fn feature_hasher() {
    // FeatureHasher(n_features=8, input_type='string').transform([[v] for v in test values])
    let expected = [
        0., 0., 1., 0., 0., 0., 0., 0., 0., 0., 0., 0., 0., -1., 0., 0., 0., -1., 0., 0., 0., 0.,
        0., 0., 0., 0., 0., 1., 0., 0., 0., 0., 0., -1., 0., 0., 0., 0., 0., 0.,
    ];
    let out = categorical("categorical = { encode = \"hashing\", hash_width = 8 }");
    assert_close(&out, &expected, 0.0);
}

fn target_encoded(target: &str, kind: TargetKind, features: &str) -> Vec<f32> {
    let t = table(CATEGORIES);
    let fitted_target = FittedTarget::fit(&t, target, kind, &TRAIN).unwrap();
    FeaturePlan::new(t.schema(), &["y", "k"], config(features))
        .target(&fitted_target)
        .fit(&t, &TRAIN)
        .unwrap()
        .transform(&t, &TEST)
        .unwrap()
        .data
}

#[test]
fn target_encoding_regression() {
    // TargetEncoder(smooth=10.0, target_type='continuous').fit(c, y).transform(test)
    let expected = [18.357143, 20.583333, 22.272727, 21.363636, 20.5];
    let out = target_encoded(
        "y",
        TargetKind::Regression,
        "categorical = { encode = \"target\" }",
    );
    assert_close(&out, &expected, 1e-5);
}

#[test]
fn target_encoding_multiclass() {
    // TargetEncoder(smooth=2.0, target_type='multiclass').fit(c, k).transform(test)
    let expected = [
        0.625, 0.291667, 0.083333, 0.1875, 0.6875, 0.125, 0.25, 0.25, 0.5, 0.25, 0.25, 0.5, 0.375,
        0.375, 0.25,
    ];
    let out = target_encoded(
        "k",
        TargetKind::Classification,
        "categorical = { encode = \"target\", smoothing = 2.0 }",
    );
    assert_close(&out, &expected, 1e-5);
}

#[test]
fn hashed_tfidf_of_word_ngrams() {
    // HashingVectorizer(n_features=16, alternate_sign=False, norm=None, ngram_range=(1, 2)),
    // then TfidfTransformer() fitted on the six train documents.
    let t = typed_table(
        "doc\nThe cat sat\nthe dog\ncat and dog\na bird\n\"\"\ndog dog cat\nthe cat\nbird bird and cat\nzebra\n",
        &[("doc", ColumnType::Text)],
    );
    let expected = [
        0.0, 0.0, 0.681722, 0.0, 0.0, 0.0, 0.0, 0.471964, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.559022,
        0.0, 0.0, 0.616092, 0.0, 0.0, 0.0, 0.260074, 0.0, 0.520147, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.375659, 0.0, 0.375659, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0,
        0.0, 1.0, 0.0,
    ];
    let out = run(
        &t,
        "text = { width = 16, ngrams = [1, 2] }",
        &[0, 1, 2, 3, 4, 5],
        &[6, 7, 8],
    );
    assert_close(&out, &expected, 1e-5);
}

#[test]
fn datetime_parts_match_pandas() {
    // pd.to_datetime(...).dt.year / .month / .day_of_week / .hour:
    // years [2013, 2013, 2016], months [1, 12, 2], day_of_week [1, 1, 0], hours [5, 23, 12]
    let t = table("d\n2013-01-01T05:17:00Z\n2013-12-31T23:00:00Z\n2016-02-29T12:30:00Z\n");
    let out = run(
        &t,
        "datetime = { parts = [\"month\", \"day_of_week\", \"hour\"], cyclic = false }",
        &[0, 1, 2],
        &[0, 1, 2],
    );
    assert_close(&out, &[1.0, 1.0, 5.0, 12.0, 1.0, 23.0, 2.0, 0.0, 12.0], 0.0);
    let cyclic = run(
        &t,
        "datetime = { parts = [\"year\", \"hour\"] }",
        &[0, 1, 2],
        &[0],
    );
    // Year standardized over 2013, 2013, 2016 (mean 2014, std √2); hour 5 as sin/cos of 2π·5/24.
    let angle = std::f64::consts::TAU * 5.0 / 24.0;
    assert_close(
        &cyclic,
        &[-1.0 / 2_f64.sqrt(), angle.sin(), angle.cos()],
        1e-6,
    );
}
