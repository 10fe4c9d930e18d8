//! The fused dense numeric transform. Kept in its own module: burn's and cubecl's preludes
//! both export `Tensor` and `Float`.

use burn_cubecl::CubeRuntime;
use burn_cubecl::kernel::into_contiguous;
use burn_cubecl::ops::numeric::empty_device_dtype;
use burn_cubecl::tensor::CubeTensor;
use cubecl::calculate_cube_count_elemwise;
use cubecl::prelude::*;

/// Rows of the parameter matrix, per input column: fill, lower bound, upper bound, center,
/// scale.
pub const PARAM_ROWS: usize = 5;

/// One unit per element: `(clamp(isnan(x) ? fill : x, lower, upper) - center) / scale`, with
/// the column's parameters from `params` (`PARAM_ROWS × cols`, row-major).
#[cube(launch)]
fn impute_clip_scale_kernel(
    input: &Array<f32>,
    params: &Array<f32>,
    output: &mut Array<f32>,
    cols: u32,
) {
    if ABSOLUTE_POS >= output.len() {
        terminate!();
    }
    let cols = cols as usize;
    let col = ABSOLUTE_POS % cols;
    let x = input[ABSOLUTE_POS];
    let filled = select(x.is_nan(), params[col], x);
    let clipped = f32::clamp(filled, params[cols + col], params[2 * cols + col]);
    output[ABSOLUTE_POS] = (clipped - params[3 * cols + col]) / params[4 * cols + col];
}

/// Runs the fused transform over `input` (`rows × cols` f32, NaN where missing) with
/// `params` (`PARAM_ROWS × cols` f32). Both are made contiguous first.
///
/// # Panics
/// When `input` is not two-dimensional or `params` does not have `cols` columns (caller bugs:
/// kiln-transform builds both).
pub fn impute_clip_scale<R: CubeRuntime>(
    input: CubeTensor<R>,
    params: CubeTensor<R>,
) -> CubeTensor<R> {
    let input = into_contiguous(input);
    let params = into_contiguous(params);
    let shape = input.meta.shape().clone();
    assert_eq!(shape.num_dims(), 2, "the dense numeric input is a matrix");
    let cols = shape[1];
    assert_eq!(
        params.meta.shape().num_elements(),
        PARAM_ROWS * cols,
        "one parameter column per input column"
    );
    let output = empty_device_dtype(
        input.client.clone(),
        input.device.clone(),
        shape.clone(),
        input.dtype,
    );
    let elements = shape.num_elements();
    let client = input.client.clone();
    let cube_dim = CubeDim::new(&client, elements);
    let cube_count = calculate_cube_count_elemwise(&client, elements, cube_dim);
    impute_clip_scale_kernel::launch::<R>(
        &client,
        cube_count,
        cube_dim,
        input.into_array_arg(),
        params.into_array_arg(),
        output.clone().into_array_arg(),
        u32::try_from(cols).expect("feature columns fit u32"),
    );
    output
}
