// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

/// @title Role identifiers shared by every flexledger contract
/// @notice Each id is keccak256 of its name, so off-chain code derives it the same way.
library FlexRoleIds {
    bytes32 internal constant MARKET_OPERATOR = keccak256("MARKET_OPERATOR_ROLE");
    bytes32 internal constant DSO = keccak256("DSO_ROLE");
    bytes32 internal constant TSO = keccak256("TSO_ROLE");
    bytes32 internal constant AGGREGATOR = keccak256("AGGREGATOR_ROLE");
    bytes32 internal constant BRP = keccak256("BRP_ROLE");
    bytes32 internal constant FIELD_SENSOR = keccak256("FIELD_SENSOR_ROLE");
    bytes32 internal constant CONCENTRATOR = keccak256("CONCENTRATOR_ROLE");
    bytes32 internal constant FR_OWNER = keccak256("FR_OWNER_ROLE");
    /// @dev Admin role of FR_OWNER and FIELD_SENSOR. Nobody holds it, so those roles change only
    /// through the functions that also keep their bindings (aggregator of an owner, sensor id).
    bytes32 internal constant BOUND_ROLES_ADMIN = keccak256("BOUND_ROLES_ADMIN_ROLE");
}
