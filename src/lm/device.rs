//! Where models run: a CUDA GPU when the crate is built with the `cuda` feature and one is
//! present, else the CPU (f32; bf16 matmuls are slow there).

use candle_core::{DType, Device};

/// The device for this process, saying on stderr when a GPU build found no GPU.
pub fn select() -> Device {
    super::allocator::keep_freed_memory();
    #[cfg(feature = "cuda")]
    {
        match Device::new_cuda(0) {
            Ok(device) => return device,
            Err(e) => eprintln!("crossdiff: no usable CUDA GPU ({e}); running on the CPU"),
        }
    }
    Device::Cpu
}

/// The dtype inference uses on `device`: bf16 on a GPU, f32 on the CPU. Training keeps f32
/// weights everywhere (AdamW on bf16 weights loses small updates).
pub fn inference_dtype(device: &Device) -> DType {
    if device.is_cuda() {
        DType::BF16
    } else {
        DType::F32
    }
}

/// A short name for messages and run records.
pub fn describe(device: &Device) -> &'static str {
    if device.is_cuda() {
        "cuda"
    } else {
        "cpu"
    }
}
