//! The synthesized CloudFormation template, read for what moto does not deploy or does not
//! keep: the HTTP API's routes, integrations and stage, and each function's logging
//! configuration. Everything moto does create (tables, queues, functions with their
//! environment, event source mappings, roles) is read back from moto instead.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

/// API Gateway's integration timeout when the template sets none.
const DEFAULT_INTEGRATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the template could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TemplateError {
    #[error("cannot read {path}: {source} (run `scripts/emulate.sh prepare`; make test does)")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not JSON: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("the template has no {0}")]
    Missing(String),
}

/// A route as the template defines it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateRoute {
    pub route_key: String,
    /// The logical id of the function its Lambda proxy integration invokes.
    pub function_logical_id: String,
    pub payload_format_version: String,
    pub timeout: Duration,
}

/// Lambda's logging configuration of one function (moto drops it).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LoggingConfig {
    pub log_format: Option<String>,
    pub application_log_level: Option<String>,
    pub system_log_level: Option<String>,
}

/// The template as synthesized.
#[derive(Clone, Debug)]
pub struct Template {
    pub document: Value,
}

impl Template {
    pub fn read(path: &Path) -> Result<Self, TemplateError> {
        let text = std::fs::read_to_string(path).map_err(|source| TemplateError::Read {
            path: path.to_owned(),
            source,
        })?;
        let document = serde_json::from_str(&text).map_err(|source| TemplateError::Json {
            path: path.to_owned(),
            source,
        })?;
        Ok(Self { document })
    }

    /// `(logical id, resource)` of every resource of `kind`, in logical id order.
    pub fn resources_of_type<'t>(&'t self, kind: &str) -> Vec<(&'t str, &'t Value)> {
        self.document["Resources"]
            .as_object()
            .map(|resources| {
                resources
                    .iter()
                    .filter(|(_, r)| r["Type"] == kind)
                    .map(|(id, r)| (id.as_str(), r))
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn resource(&self, logical_id: &str) -> Option<&Value> {
        self.document["Resources"].get(logical_id)
    }

    /// The logical id an output's `Ref` names (e.g. `IngestFunctionName` -> the function).
    pub fn output_ref(&self, output: &str) -> Result<String, TemplateError> {
        referenced_id(&self.document["Outputs"][output]["Value"])
            .ok_or_else(|| TemplateError::Missing(format!("output {output} with a Ref")))
    }

    /// The HTTP API's routes with their integrations.
    pub fn routes(&self) -> Result<Vec<TemplateRoute>, TemplateError> {
        let mut routes = Vec::new();
        for (id, route) in self.resources_of_type("AWS::ApiGatewayV2::Route") {
            let properties = &route["Properties"];
            let route_key = properties["RouteKey"]
                .as_str()
                .ok_or_else(|| TemplateError::Missing(format!("RouteKey on {id}")))?;
            let integration_id = referenced_id(&properties["Target"])
                .ok_or_else(|| TemplateError::Missing(format!("an integration Target on {id}")))?;
            let integration = self
                .resource(&integration_id)
                .ok_or_else(|| TemplateError::Missing(format!("integration {integration_id}")))?;
            let integration = &integration["Properties"];
            let function_logical_id =
                referenced_id(&integration["IntegrationUri"]).ok_or_else(|| {
                    TemplateError::Missing(format!("a function IntegrationUri on {integration_id}"))
                })?;
            routes.push(TemplateRoute {
                route_key: route_key.to_owned(),
                function_logical_id,
                payload_format_version: integration["PayloadFormatVersion"]
                    .as_str()
                    .unwrap_or("1.0")
                    .to_owned(),
                timeout: integration["TimeoutInMillis"]
                    .as_u64()
                    .map_or(DEFAULT_INTEGRATION_TIMEOUT, Duration::from_millis),
            });
        }
        if routes.is_empty() {
            return Err(TemplateError::Missing(
                "AWS::ApiGatewayV2::Route".to_owned(),
            ));
        }
        Ok(routes)
    }

    /// The HTTP API's stage name (`$default` for the stage-less URL).
    pub fn stage_name(&self) -> Result<String, TemplateError> {
        self.resources_of_type("AWS::ApiGatewayV2::Stage")
            .first()
            .and_then(|(_, stage)| stage["Properties"]["StageName"].as_str())
            .map(str::to_owned)
            .ok_or_else(|| TemplateError::Missing("AWS::ApiGatewayV2::Stage".to_owned()))
    }

    pub fn logging_config(&self, function_logical_id: &str) -> LoggingConfig {
        let config = self
            .resource(function_logical_id)
            .map(|f| &f["Properties"]["LoggingConfig"]);
        let field = |name: &str| config.and_then(|c| c[name].as_str()).map(str::to_owned);
        LoggingConfig {
            log_format: field("LogFormat"),
            application_log_level: field("ApplicationLogLevel"),
            system_log_level: field("SystemLogLevel"),
        }
    }

    /// The function's X-Ray tracing mode (`Active` or `PassThrough`), if set.
    pub fn tracing_mode(&self, function_logical_id: &str) -> Option<String> {
        self.resource(function_logical_id)?["Properties"]["TracingConfig"]["Mode"]
            .as_str()
            .map(str::to_owned)
    }
}

/// The logical id a `Ref`, `Fn::GetAtt` or a `Fn::Join` holding one of them names.
pub fn referenced_id(value: &Value) -> Option<String> {
    if let Some(id) = value["Ref"].as_str() {
        return Some(id.to_owned());
    }
    if let Some(id) = value["Fn::GetAtt"][0].as_str() {
        return Some(id.to_owned());
    }
    value["Fn::Join"][1]
        .as_array()?
        .iter()
        .find_map(referenced_id)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn routes_resolve_through_their_integration_to_the_function() {
        let template = Template {
            document: json!({
                "Resources": {
                    "ApiDefaultRoute": {"Type": "AWS::ApiGatewayV2::Route", "Properties": {
                        "RouteKey": "$default",
                        "Target": {"Fn::Join": ["", ["integrations/", {"Ref": "ApiIntegration"}]]}
                    }},
                    "ApiIntegration": {"Type": "AWS::ApiGatewayV2::Integration", "Properties": {
                        "IntegrationUri": {"Fn::GetAtt": ["Ingest1234", "Arn"]},
                        "PayloadFormatVersion": "2.0"
                    }},
                    "Stage": {"Type": "AWS::ApiGatewayV2::Stage", "Properties": {"StageName": "$default"}},
                    "Ingest1234": {"Type": "AWS::Lambda::Function", "Properties": {
                        "LoggingConfig": {"LogFormat": "JSON", "ApplicationLogLevel": "INFO"}
                    }}
                },
                "Outputs": {"IngestFunctionName": {"Value": {"Ref": "Ingest1234"}}}
            }),
        };
        let routes = template.routes().unwrap();
        assert_eq!(routes.len(), 1);
        assert_eq!(routes[0].route_key, "$default");
        assert_eq!(routes[0].function_logical_id, "Ingest1234");
        assert_eq!(routes[0].payload_format_version, "2.0");
        assert_eq!(routes[0].timeout, DEFAULT_INTEGRATION_TIMEOUT);
        assert_eq!(template.stage_name().unwrap(), "$default");
        assert_eq!(
            template.output_ref("IngestFunctionName").unwrap(),
            "Ingest1234"
        );
        let logging = template.logging_config("Ingest1234");
        assert_eq!(logging.log_format.as_deref(), Some("JSON"));
        assert_eq!(logging.system_log_level, None);
    }
}
