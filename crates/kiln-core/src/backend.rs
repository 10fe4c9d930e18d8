//! Backend selection: the one place that names concrete burn backends.
//!
//! Code above kiln-core is generic over `B: AutodiffBackend`; a [`BackendVisitor`] receives
//! the concrete backend chosen at run time by [`dispatch`].

use std::fmt;
use std::str::FromStr;
use std::sync::OnceLock;

use burn::backend::{Autodiff, Flex, NdArray, Wgpu};
use burn::tensor::backend::AutodiffBackend;
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// burn's ndarray backend, f32, single-threaded (bit-exact reruns).
pub type NdArrayBackend = NdArray<f32>;
/// burn's flex CPU backend.
pub type FlexBackend = Flex;
/// burn's wgpu backend (Vulkan, Metal, DX12; lavapipe on a CPU-only machine).
pub type WgpuBackend = Wgpu;
/// burn's CUDA backend (built with the `cuda` feature).
#[cfg(feature = "cuda")]
pub type CudaBackend = burn::backend::Cuda;

/// A backend kiln can run on, chosen with `--backend`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackendKind {
    /// burn-ndarray on the CPU.
    Ndarray,
    /// burn-flex on the CPU.
    Flex,
    /// burn-wgpu on the first GPU adapter wgpu finds.
    Wgpu,
    /// burn-cuda on CUDA device 0; only in builds with the `cuda` feature.
    Cuda,
}

impl BackendKind {
    /// Every backend kiln knows, compiled into this build or not.
    pub const ALL: [BackendKind; 4] = [
        BackendKind::Ndarray,
        BackendKind::Flex,
        BackendKind::Wgpu,
        BackendKind::Cuda,
    ];

    /// The name used on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
            BackendKind::Cuda => "cuda",
        }
    }

    /// Whether this build contains the backend (cuda needs the `cuda` cargo feature).
    pub fn is_compiled(self) -> bool {
        self != BackendKind::Cuda || cfg!(feature = "cuda")
    }

    /// The backends compiled into this build.
    pub fn compiled() -> impl Iterator<Item = BackendKind> {
        Self::ALL.into_iter().filter(|k| k.is_compiled())
    }

    /// Resolves a `--backend` value: a backend's name, or `auto` for [`auto`]'s choice.
    ///
    /// # Errors
    /// [`Error::UnknownBackend`] for any other name.
    pub fn resolve(name: &str) -> Result<BackendKind> {
        if name == AUTO {
            Ok(auto())
        } else {
            name.parse()
        }
    }
}

/// The `--backend` value that lets kiln choose.
pub const AUTO: &str = "auto";

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad` honours width and alignment, for tables.
        f.pad(self.name())
    }
}

impl FromStr for BackendKind {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        Self::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| Error::UnknownBackend {
                name: s.to_owned(),
                expected: Self::ALL
                    .map(BackendKind::name)
                    .into_iter()
                    .chain([AUTO])
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }
}

/// The floating-point type a run's tensors are created with (`[train] precision`).
///
/// burn 0.21 keeps the element type per tensor at run time: the device's default float type
/// decides, so a precision needs no other backend type (and no second compiled copy of the
/// training code).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// 32-bit floats everywhere.
    #[default]
    F32,
    /// IEEE half precision (flex, wgpu with shader-f16, cuda): weights, activations, gradients
    /// and optimizer state alike; a narrow range, so small gradients can flush to zero.
    F16,
    /// bfloat16 (flex, cuda; wgpu where the adapter has it): f32's range with 8 bits of
    /// mantissa, so no loss scaling is needed.
    Bf16,
}

impl Precision {
    /// The name used in `pipeline.toml`.
    pub fn name(self) -> &'static str {
        match self {
            Precision::F32 => "f32",
            Precision::F16 => "f16",
            Precision::Bf16 => "bf16",
        }
    }

    fn dtype(self) -> burn::tensor::FloatDType {
        match self {
            Precision::F32 => burn::tensor::FloatDType::F32,
            Precision::F16 => burn::tensor::FloatDType::F16,
            Precision::Bf16 => burn::tensor::FloatDType::BF16,
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.name())
    }
}

/// What a run executed on, recorded in the manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// The backend.
    pub backend: BackendKind,
    /// The device's name (the adapter name on wgpu).
    pub name: String,
    /// `cpu`, `discrete-gpu`, `integrated-gpu`, `virtual-gpu` or `other`.
    pub device_type: String,
}

/// Receives the backend chosen at run time.
pub trait BackendVisitor {
    /// What the visit returns.
    type Output;
    /// Runs with the concrete autodiff backend `B` on `device`.
    fn visit<B: AutodiffBackend>(self, device: B::Device, info: DeviceInfo) -> Self::Output;
}

/// Calls `visitor` with the backend named by `kind`.
///
/// # Errors
/// [`Error::NotCompiled`] for cuda in a build without the `cuda` feature;
/// [`Error::NoDevice`] when the backend's device cannot be opened here.
pub fn dispatch<V: BackendVisitor>(kind: BackendKind, visitor: V) -> Result<V::Output> {
    let info = device_info(kind)?;
    Ok(match kind {
        BackendKind::Ndarray => visitor
            .visit::<Autodiff<NdArrayBackend>>(burn::backend::ndarray::NdArrayDevice::Cpu, info),
        BackendKind::Flex => {
            visitor.visit::<Autodiff<FlexBackend>>(burn::backend::flex::FlexDevice, info)
        }
        BackendKind::Wgpu => {
            visitor.visit::<Autodiff<WgpuBackend>>(burn::backend::wgpu::WgpuDevice::default(), info)
        }
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => {
            visitor.visit::<Autodiff<CudaBackend>>(burn::backend::cuda::CudaDevice::default(), info)
        }
        #[cfg(not(feature = "cuda"))]
        BackendKind::Cuda => unreachable!("device_info refuses backends not compiled in"),
    })
}

/// Calls `visitor` with the backend named by `kind`, its device creating float tensors in
/// `precision`.
///
/// # Errors
/// As [`dispatch`]; [`Error::Precision`] when the device does not support `precision`, or
/// when this process already used the device in another precision.
pub fn dispatch_with<V: BackendVisitor>(
    kind: BackendKind,
    precision: Precision,
    visitor: V,
) -> Result<V::Output> {
    dispatch(
        kind,
        InPrecision {
            precision,
            inner: visitor,
        },
    )?
}

/// Sets the device's default float type before handing it to the inner visitor.
struct InPrecision<V> {
    precision: Precision,
    inner: V,
}

impl<V: BackendVisitor> BackendVisitor for InPrecision<V> {
    type Output = Result<V::Output>;

    fn visit<B: AutodiffBackend>(self, device: B::Device, info: DeviceInfo) -> Self::Output {
        let wanted = self.precision.dtype();
        let int = <B::IntElem as burn::tensor::Element>::dtype();
        match burn::tensor::set_default_dtypes::<B>(&device, wanted, int) {
            Ok(()) => {}
            // Set before in this process (compare-backends, evaluation after training): fine
            // when it is the same type.
            Err(burn::tensor::backend::DeviceError::AlreadyInitialized { .. })
                if burn::tensor::get_device_settings::<B>(&device).float_dtype == wanted => {}
            Err(e) => {
                return Err(Error::Precision {
                    precision: self.precision,
                    backend: info.backend,
                    reason: e.to_string(),
                });
            }
        }
        Ok(self.inner.visit::<B>(device, info))
    }
}

/// Makes the calling thread worker 0 of rayon's global pool, which the CPU backends' kernels
/// (flex's products, its large reductions) and kiln's data stages run on. From a thread outside
/// the pool, each parallel kernel is queued for the pool's threads while the caller sleeps
/// until they finish; from a worker it runs in place, its other half stolen by the next
/// worker. A training step calls dozens of such kernels: measured on 2 cores (benches/README),
/// a small MLP's Adam step on flex took 1.25× less time, the 784-256-128-10 MLP's 1.14×.
/// Call it first thing in `main`, on the thread that will train, and not on a thread that
/// blocks on other work while the pool is busy (an async runtime's): rayon runs no queued work
/// on it until it calls into rayon. Does nothing when the global pool already exists.
pub fn join_compute_pool() {
    // An error only says the pool was built before: then it stays as it is.
    let _ = rayon::ThreadPoolBuilder::new()
        .use_current_thread()
        .build_global();
}

/// Whether `device` computes in host memory (the CPU backends, ndarray and flex), where a
/// tensor made from a `Vec` takes its buffer over without a copy.
pub fn in_host_memory<D: std::any::Any>(device: &D) -> bool {
    let any: &dyn std::any::Any = device;
    any.is::<burn::backend::ndarray::NdArrayDevice>() || any.is::<burn::backend::flex::FlexDevice>()
}

/// The devices of `count` data-parallel replicas, given the device [`dispatch`] opened. The
/// CPU backends (ndarray, flex) have one device, which every replica shares: that checks the
/// semantics on any machine, and is no faster. wgpu takes its discrete GPUs `0..count`
/// (`WgpuDevice::DiscreteGpu(i)`), cuda its devices `0..count`. One replica keeps `main`.
///
/// # Errors
/// [`Error::TooFewDevices`] when `count` is 0 or exceeds the devices the backend sees here.
pub fn replica_devices<B: burn::tensor::backend::Backend>(
    main: &B::Device,
    count: usize,
) -> Result<Vec<B::Device>> {
    use burn::tensor::backend::{Device, DeviceId};
    let any: &dyn std::any::Any = main;
    let host = in_host_memory(main);
    // Type 0 is wgpu's discrete GPUs and CUDA's only kind of device.
    let (available, kind) = if host {
        (usize::MAX, "CPU devices")
    } else if any.is::<burn::backend::wgpu::WgpuDevice>() {
        (B::device_count(0), "discrete GPUs visible to wgpu")
    } else {
        (B::device_count(0), "CUDA devices")
    };
    match count {
        0 => Err(Error::TooFewDevices {
            requested: 0,
            available: available.min(1),
            kind,
        }),
        1 => Ok(vec![main.clone()]),
        _ if host => Ok(vec![main.clone(); count]),
        _ if count > available => Err(Error::TooFewDevices {
            requested: count,
            available,
            kind,
        }),
        #[allow(clippy::cast_possible_truncation)] // Device indices are u16 in burn.
        _ => Ok((0..count)
            .map(|i| B::Device::from_id(DeviceId::new(0, i as u16)))
            .collect()),
    }
}

/// The device `kind` runs on here.
///
/// # Errors
/// [`Error::NotCompiled`] or [`Error::NoDevice`], each listing the backends usable here.
pub fn device_info(kind: BackendKind) -> Result<DeviceInfo> {
    let probed = probe(kind);
    probed.clone().map_err(|reason| {
        let available = usable_except(kind);
        if kind.is_compiled() {
            Error::NoDevice {
                backend: kind,
                reason,
                available,
            }
        } else {
            Error::NotCompiled {
                backend: kind,
                available,
            }
        }
    })
}

/// The device of `kind`, or why there is none; opened once per process.
fn probe(kind: BackendKind) -> &'static std::result::Result<DeviceInfo, String> {
    static PROBES: [OnceLock<std::result::Result<DeviceInfo, String>>; 4] =
        [const { OnceLock::new() }; 4];
    PROBES[kind as usize].get_or_init(|| match kind {
        BackendKind::Ndarray | BackendKind::Flex => Ok(DeviceInfo {
            backend: kind,
            name: "cpu".into(),
            device_type: "cpu".into(),
        }),
        BackendKind::Wgpu => catch_panic(wgpu_device),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => catch_panic(cuda_device)
            .and_then(|r| r)
            // cudarc lists every library name it tried: the first sentence says enough.
            .map_err(|reason| {
                reason
                    .split(" - searched")
                    .next()
                    .unwrap_or_default()
                    .to_owned()
            }),
        #[cfg(not(feature = "cuda"))]
        BackendKind::Cuda => Err("not compiled into this build".into()),
    })
}

/// The other backends with a usable device here, comma separated, for error messages.
fn usable_except(kind: BackendKind) -> String {
    BackendKind::compiled()
        .filter(|&k| k != kind && probe(k).is_ok())
        .map(BackendKind::name)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Runs `open`, turning a panic into its message: cubecl and cudarc panic when no adapter or
/// driver library is found.
fn catch_panic<T>(
    open: impl FnOnce() -> T + std::panic::UnwindSafe,
) -> std::result::Result<T, String> {
    let previous_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(|_| {}));
    let opened = std::panic::catch_unwind(open);
    std::panic::set_hook(previous_hook);
    opened.map_err(|panic| {
        panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
            .unwrap_or_else(|| "the device could not be opened".into())
    })
}

/// Opens the default wgpu adapter and describes it (cubecl panics when there is none).
fn wgpu_device() -> DeviceInfo {
    let setup = burn::backend::wgpu::init_setup::<burn::backend::wgpu::graphics::AutoGraphicsApi>(
        &burn::backend::wgpu::WgpuDevice::default(),
        burn::backend::wgpu::RuntimeOptions::default(),
    );
    let adapter = setup.adapter.get_info();
    let device_type = match format!("{:?}", adapter.device_type).as_str() {
        "Cpu" => "cpu",
        "DiscreteGpu" => "discrete-gpu",
        "IntegratedGpu" => "integrated-gpu",
        "VirtualGpu" => "virtual-gpu",
        _ => "other",
    };
    DeviceInfo {
        backend: BackendKind::Wgpu,
        name: format!("{} ({:?})", adapter.name, adapter.backend),
        device_type: device_type.into(),
    }
}

/// Opens CUDA device 0 through the driver API and describes it.
#[cfg(feature = "cuda")]
fn cuda_device() -> std::result::Result<DeviceInfo, String> {
    let context = cudarc::driver::CudaContext::new(0).map_err(|e| e.to_string())?;
    let name = context.name().map_err(|e| e.to_string())?;
    let (major, minor) = context.compute_capability().map_err(|e| e.to_string())?;
    Ok(DeviceInfo {
        backend: BackendKind::Cuda,
        name: format!("{name} (sm_{major}{minor})"),
        device_type: "discrete-gpu".into(),
    })
}

/// The backend `--backend auto` picks: a GPU when one is here (cuda when compiled in, then a
/// wgpu adapter that is not a CPU emulation such as lavapipe), else the faster CPU backend on
/// a short measurement of a training-shaped step.
pub fn auto() -> BackendKind {
    static CHOICE: OnceLock<BackendKind> = OnceLock::new();
    *CHOICE.get_or_init(|| {
        let gpu = [BackendKind::Cuda, BackendKind::Wgpu]
            .into_iter()
            .find(|&k| {
                k.is_compiled()
                    && probe(k)
                        .as_ref()
                        .is_ok_and(|d| d.device_type.ends_with("gpu"))
            });
        gpu.unwrap_or_else(|| {
            let ndarray =
                cpu_step_seconds::<NdArrayBackend>(&burn::backend::ndarray::NdArrayDevice::Cpu);
            let flex = cpu_step_seconds::<FlexBackend>(&burn::backend::flex::FlexDevice);
            if flex <= ndarray {
                BackendKind::Flex
            } else {
                BackendKind::Ndarray
            }
        })
    })
}

/// Median seconds of a forward + backward-shaped pair of products at batch 256 through a
/// 784 × 256 layer: the work that dominates a tabular or MLP training step.
fn cpu_step_seconds<B: burn::tensor::backend::Backend>(device: &B::Device) -> f64 {
    use burn::tensor::{Distribution, Tensor};
    let x = Tensor::<B, 2>::random([256, 784], Distribution::Default, device);
    let w = Tensor::<B, 2>::random([784, 256], Distribution::Default, device);
    let mut times: Vec<f64> = (0..7)
        .map(|_| {
            let started = std::time::Instant::now();
            let h = x.clone().matmul(w.clone());
            let grad = x.clone().transpose().matmul(h);
            std::hint::black_box(grad.into_data());
            started.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_unknown_names_list_the_valid_ones() {
        for kind in BackendKind::ALL {
            assert_eq!(kind.name().parse::<BackendKind>().unwrap(), kind);
        }
        let err = "cuda9".parse::<BackendKind>().unwrap_err().to_string();
        assert_eq!(
            err,
            "unknown backend `cuda9`; expected one of: ndarray, flex, wgpu, cuda, auto"
        );
        assert_eq!(BackendKind::resolve("flex").unwrap(), BackendKind::Flex);
    }

    #[test]
    fn replicas_share_the_cpu_and_count_gpus() {
        use burn::tensor::backend::Backend;
        let cpu = burn::backend::ndarray::NdArrayDevice::Cpu;
        assert_eq!(
            replica_devices::<NdArrayBackend>(&cpu, 3).unwrap(),
            vec![cpu; 3]
        );
        let err = replica_devices::<NdArrayBackend>(&cpu, 0).unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot train on 0 devices: CPU devices here: 1"
        );
        // wgpu counts discrete GPUs (none where it runs on lavapipe).
        if device_info(BackendKind::Wgpu).is_ok() {
            let main = burn::backend::wgpu::WgpuDevice::default();
            let gpus = WgpuBackend::device_count(0);
            assert_eq!(
                replica_devices::<WgpuBackend>(&main, 1).unwrap(),
                vec![main.clone()]
            );
            // One more than there are, and at least 2 (one device is always the one opened).
            let too_many = gpus.max(1) + 1;
            let err = replica_devices::<WgpuBackend>(&main, too_many).unwrap_err();
            assert_eq!(
                err.to_string(),
                format!(
                    "cannot train on {too_many} devices: discrete GPUs visible to wgpu here: {gpus}"
                )
            );
            if gpus >= 2 {
                let devices = replica_devices::<WgpuBackend>(&main, 2).unwrap();
                assert_eq!(
                    devices,
                    [0, 1].map(burn::backend::wgpu::WgpuDevice::DiscreteGpu)
                );
            }
        }
    }
}
