//! Small HTTP helpers shared by the request path, the access log and the admin
//! listener: heads edited as plain header maps, numbers and addresses as ASCII, and
//! hand-written JSON. None of them knows about configuration or policy.

pub mod ascii;
pub mod head_edit;
pub mod json;
