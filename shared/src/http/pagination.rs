//! List responses: a JSON array plus `X-Total-Count`, `X-Page`, `X-Page-Size`,
//! `X-Total-Pages` and an RFC 8288 `Link` header (`first`, `prev`, `next`, `last`).

use axum::Json;
use axum::http::{HeaderMap, HeaderName, HeaderValue, Uri, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

use crate::service::Paged;

pub const TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");
pub const PAGE: HeaderName = HeaderName::from_static("x-page");
pub const PAGE_SIZE: HeaderName = HeaderName::from_static("x-page-size");
pub const TOTAL_PAGES: HeaderName = HeaderName::from_static("x-total-pages");

/// One page of a list, answered as the JSON array of its items with the paging headers.
#[derive(Debug)]
pub struct PageResponse<T> {
    paged: Paged<T>,
    /// The request's URI (as the client sent it), for the `Link` targets.
    uri: Uri,
}

/// The response for one page of a list requested at `uri`.
pub fn paginated<T: Serialize>(paged: Paged<T>, uri: Uri) -> PageResponse<T> {
    PageResponse { paged, uri }
}

impl<T: Serialize> IntoResponse for PageResponse<T> {
    fn into_response(self) -> Response {
        let Self { paged, uri } = self;
        page_response(paged, &uri)
    }
}

fn page_response<T: Serialize>(paged: Paged<T>, uri: &Uri) -> Response {
    let mut headers = HeaderMap::new();
    let total_pages = paged.total_pages();
    headers.insert(TOTAL_COUNT, HeaderValue::from(paged.total));
    headers.insert(PAGE, HeaderValue::from(paged.page.page));
    headers.insert(PAGE_SIZE, HeaderValue::from(paged.page.size));
    headers.insert(TOTAL_PAGES, HeaderValue::from(total_pages));
    if let Ok(link) = HeaderValue::from_str(&link_header(
        uri,
        paged.page.page,
        paged.page.size,
        total_pages,
    )) {
        headers.insert(header::LINK, link);
    }
    (headers, Json(paged.items)).into_response()
}

/// `first` and `last` always (`last` is page 1 for an empty list); `prev` and `next` when
/// those pages exist. Targets keep the request's other query parameters.
fn link_header(uri: &Uri, page: u32, size: u32, total_pages: u64) -> String {
    let last = total_pages.max(1);
    let target = |n: u64| {
        let mut query = form_urlencoded::Serializer::new(String::new());
        for (name, value) in form_urlencoded::parse(uri.query().unwrap_or_default().as_bytes()) {
            if name != "page" && name != "size" {
                query.append_pair(&name, &value);
            }
        }
        query.append_pair("page", &n.to_string());
        query.append_pair("size", &size.to_string());
        format!("<{}?{}>", uri.path(), query.finish())
    };
    let page = u64::from(page);
    let mut links = vec![format!("{}; rel=\"first\"", target(1))];
    if page > 1 {
        links.push(format!("{}; rel=\"prev\"", target((page - 1).min(last))));
    }
    if page < last {
        links.push(format!("{}; rel=\"next\"", target(page + 1)));
    }
    links.push(format!("{}; rel=\"last\"", target(last)));
    links.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_keep_filters_and_move_pages() {
        let uri: Uri = "/x/pipelines?q=etl&page=2&size=10".parse().unwrap();
        let link = link_header(&uri, 2, 10, 3);
        assert_eq!(
            link,
            "</x/pipelines?q=etl&page=1&size=10>; rel=\"first\", \
             </x/pipelines?q=etl&page=1&size=10>; rel=\"prev\", \
             </x/pipelines?q=etl&page=3&size=10>; rel=\"next\", \
             </x/pipelines?q=etl&page=3&size=10>; rel=\"last\""
        );
    }

    #[test]
    fn empty_lists_link_to_page_one() {
        let uri: Uri = "/x/runs".parse().unwrap();
        assert_eq!(
            link_header(&uri, 1, 100, 0),
            "</x/runs?page=1&size=100>; rel=\"first\", </x/runs?page=1&size=100>; rel=\"last\""
        );
    }
}
