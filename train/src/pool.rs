//! CycleGAN's image pool: discriminators see a history of generated images, not only the
//! latest batch, which damps oscillation (Shrivastava et al.; pool of 50 in the paper).

use rand::Rng;
use tch::Tensor;

pub struct ImagePool {
    capacity: usize,
    images: Vec<Tensor>,
}

impl ImagePool {
    pub fn new(capacity: usize) -> Self {
        ImagePool {
            capacity,
            images: Vec::new(),
        }
    }

    /// For each image of `batch` (detached): while the pool fills, store and return it; then
    /// with probability ½ return a stored image and store the new one in its place.
    pub fn query(&mut self, batch: &Tensor, rng: &mut impl Rng) -> Tensor {
        if self.capacity == 0 {
            return batch.detach();
        }
        let batch = batch.detach();
        let out: Vec<Tensor> = (0..batch.size()[0])
            .map(|i| {
                let image = batch.get(i).copy();
                if self.images.len() < self.capacity {
                    self.images.push(image.shallow_clone());
                    image
                } else if rng.random_bool(0.5) {
                    let j = rng.random_range(0..self.capacity);
                    std::mem::replace(&mut self.images[j], image)
                } else {
                    image
                }
            })
            .collect();
        Tensor::stack(&out, 0)
    }

    /// The stored images as one tensor [n, C, H, W] (None when empty), for checkpoints.
    pub fn to_tensor(&self) -> Option<Tensor> {
        (!self.images.is_empty()).then(|| Tensor::stack(&self.images, 0))
    }

    pub fn restore(&mut self, stored: &Tensor) {
        self.images = (0..stored.size()[0])
            .map(|i| stored.get(i).copy())
            .collect();
    }

    pub fn len(&self) -> usize {
        self.images.len()
    }

    pub fn is_empty(&self) -> bool {
        self.images.is_empty()
    }
}
