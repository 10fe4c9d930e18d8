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
}

impl BackendKind {
    /// Every backend compiled into this build.
    pub const ALL: [BackendKind; 3] = [BackendKind::Ndarray, BackendKind::Flex, BackendKind::Wgpu];

    /// The name used on the command line and in manifests.
    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Ndarray => "ndarray",
            BackendKind::Flex => "flex",
            BackendKind::Wgpu => "wgpu",
        }
    }
}

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
                expected: Self::ALL.map(BackendKind::name).join(", "),
            })
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
/// [`Error::NoDevice`] when `kind` is wgpu and no adapter can be opened.
pub fn dispatch<V: BackendVisitor>(kind: BackendKind, visitor: V) -> Result<V::Output> {
    Ok(match kind {
        BackendKind::Ndarray => visitor.visit::<Autodiff<NdArrayBackend>>(
            burn::backend::ndarray::NdArrayDevice::Cpu,
            cpu_device(kind),
        ),
        BackendKind::Flex => visitor
            .visit::<Autodiff<FlexBackend>>(burn::backend::flex::FlexDevice, cpu_device(kind)),
        BackendKind::Wgpu => {
            let info = wgpu_device_info()?;
            visitor.visit::<Autodiff<WgpuBackend>>(burn::backend::wgpu::WgpuDevice::default(), info)
        }
    })
}

/// The device `kind` runs on here.
///
/// # Errors
/// [`Error::NoDevice`] when `kind` is wgpu and no adapter can be opened.
pub fn device_info(kind: BackendKind) -> Result<DeviceInfo> {
    match kind {
        BackendKind::Ndarray | BackendKind::Flex => Ok(cpu_device(kind)),
        BackendKind::Wgpu => wgpu_device_info(),
    }
}

fn cpu_device(backend: BackendKind) -> DeviceInfo {
    DeviceInfo {
        backend,
        name: "cpu".into(),
        device_type: "cpu".into(),
    }
}

/// Opens the default wgpu adapter once per process and describes it.
///
/// # Errors
/// [`Error::NoDevice`] when wgpu finds no adapter (cubecl panics in that case; the panic is
/// caught here and turned into an error).
pub fn wgpu_device_info() -> Result<DeviceInfo> {
    static INFO: OnceLock<std::result::Result<DeviceInfo, String>> = OnceLock::new();
    let probed = INFO.get_or_init(|| {
        let previous_hook = std::panic::take_hook();
        std::panic::set_hook(Box::new(|_| {}));
        let setup = std::panic::catch_unwind(|| {
            burn::backend::wgpu::init_setup::<burn::backend::wgpu::graphics::AutoGraphicsApi>(
                &burn::backend::wgpu::WgpuDevice::default(),
                burn::backend::wgpu::RuntimeOptions::default(),
            )
        });
        std::panic::set_hook(previous_hook);
        match setup {
            Ok(setup) => {
                let adapter = setup.adapter.get_info();
                let device_type = match format!("{:?}", adapter.device_type).as_str() {
                    "Cpu" => "cpu",
                    "DiscreteGpu" => "discrete-gpu",
                    "IntegratedGpu" => "integrated-gpu",
                    "VirtualGpu" => "virtual-gpu",
                    _ => "other",
                };
                Ok(DeviceInfo {
                    backend: BackendKind::Wgpu,
                    name: format!("{} ({:?})", adapter.name, adapter.backend),
                    device_type: device_type.into(),
                })
            }
            Err(panic) => Err(panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_owned()))
                .unwrap_or_else(|| "wgpu found no adapter".into())),
        }
    });
    probed.clone().map_err(|reason| Error::NoDevice {
        backend: BackendKind::Wgpu,
        reason,
    })
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
            "unknown backend `cuda9`; expected one of: ndarray, flex, wgpu"
        );
    }
}
