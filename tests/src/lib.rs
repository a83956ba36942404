//! Helpers shared by every integration test: a fresh, uniquely named set of AWS resources on the
//! local AWS endpoint (moto) per test, a Box simulator per test, and a fake Lambda Runtime API
//! for starting the functions' real binaries.

pub mod apigw;
pub mod aws;
pub mod boxsim;
pub mod fuzz;
pub mod lambda_api;
pub mod logs;
pub mod sync;
