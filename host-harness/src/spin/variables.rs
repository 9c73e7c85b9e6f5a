//! `fermyon:spin/variables@2.0.0`: a component's variables, their templates filled from the
//! application variables once, when the app is loaded.

use super::State;
use super::bindings::fermyon::spin::variables::{Error, Host};
use super::manifest::valid_name;

impl Host for State {
    fn get(&mut self, name: String) -> Result<String, Error> {
        if !valid_name(&name) {
            return Err(Error::InvalidName(name));
        }
        match self.variables.get(&name) {
            Some(value) => Ok(value.clone()),
            None => Err(Error::Undefined(format!(
                "the component has no value for `{name}`"
            ))),
        }
    }
}
