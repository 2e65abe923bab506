//! Use cases behind the endpoints, independent of HTTP and of the storage backend.

pub mod comments;
pub mod connectors;
pub mod governance;
pub mod pipelines;
pub mod runs;
pub mod trigger;

/// Page-number pagination (the platform convention: `page` from 1, `size`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PageRequest {
    pub page: u32,
    pub size: u32,
}

impl PageRequest {
    pub fn offset(&self) -> usize {
        (self.page as usize - 1).saturating_mul(self.size as usize)
    }

    /// The slice of `items` this page covers.
    pub fn slice<T>(&self, items: Vec<T>) -> Vec<T> {
        items
            .into_iter()
            .skip(self.offset())
            .take(self.size as usize)
            .collect()
    }
}

/// One page of a list, with the total across all pages.
#[derive(Debug, Clone)]
pub struct Paged<T> {
    pub items: Vec<T>,
    pub total: u64,
    pub page: PageRequest,
}

impl<T> Paged<T> {
    pub fn total_pages(&self) -> u64 {
        self.total.div_ceil(u64::from(self.page.size))
    }
}
