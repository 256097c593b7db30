// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {AccessControl} from "@openzeppelin/contracts/access/AccessControl.sol";
import {ECDSA} from "@openzeppelin/contracts/utils/cryptography/ECDSA.sol";
import {EIP712} from "@openzeppelin/contracts/utils/cryptography/EIP712.sol";
import {IFlexRoles} from "./interfaces/IFlexRoles.sol";
import {FlexRoleIds} from "./libraries/FlexRoleIds.sol";

/// @title FlexRoles: who is who in the flexibility market
/// @notice Holds every role (AccessControl) and is the `verifyingContract` of the one EIP-712
/// domain ("flexledger", "1") that every signed message uses. The admin grants and revokes the
/// market operator, DSO, TSO, aggregator, BRP and concentrator roles with `grantRole` /
/// `revokeRole`; field sensors are bound to a sensor id by the admin; FR owners are granted and
/// revoked by their aggregator only. Light Node devices are bound to their POD in
/// MeasurementAnchor, next to the anchors they guard (see docs/PROTOCOL.md).
contract FlexRoles is AccessControl, EIP712, IFlexRoles {
    bytes32 public constant MARKET_OPERATOR_ROLE = FlexRoleIds.MARKET_OPERATOR;
    bytes32 public constant DSO_ROLE = FlexRoleIds.DSO;
    bytes32 public constant TSO_ROLE = FlexRoleIds.TSO;
    bytes32 public constant AGGREGATOR_ROLE = FlexRoleIds.AGGREGATOR;
    bytes32 public constant BRP_ROLE = FlexRoleIds.BRP;
    bytes32 public constant FIELD_SENSOR_ROLE = FlexRoleIds.FIELD_SENSOR;
    bytes32 public constant CONCENTRATOR_ROLE = FlexRoleIds.CONCENTRATOR;
    bytes32 public constant FR_OWNER_ROLE = FlexRoleIds.FR_OWNER;

    mapping(address owner => address aggregator) private _aggregatorOf;
    mapping(bytes32 sensorId => address sensor) private _sensorOf;
    mapping(address sensor => bytes32 sensorId) private _sensorIdOf;

    /// @param admin The account that grants and revokes roles.
    constructor(address admin) EIP712("flexledger", "1") {
        if (admin == address(0)) revert FlexRolesZeroAddress();
        _grantRole(DEFAULT_ADMIN_ROLE, admin);
        _setRoleAdmin(FR_OWNER_ROLE, FlexRoleIds.BOUND_ROLES_ADMIN);
        _setRoleAdmin(FIELD_SENSOR_ROLE, FlexRoleIds.BOUND_ROLES_ADMIN);
    }

    modifier onlyAdmin() {
        if (!hasRole(DEFAULT_ADMIN_ROLE, msg.sender)) revert FlexRolesNotAdmin(msg.sender);
        _;
    }

    /// @notice Grant FR_OWNER_ROLE to a customer of the calling aggregator.
    /// @dev Idempotent for the same aggregator; an owner granted by another aggregator reverts.
    /// @param owner The FR owner's key.
    function grantFrOwner(address owner) external {
        if (!hasRole(AGGREGATOR_ROLE, msg.sender)) revert FlexRolesNotAggregator(msg.sender);
        if (owner == address(0)) revert FlexRolesZeroAddress();
        address current = _aggregatorOf[owner];
        if (current != address(0) && current != msg.sender) revert FlexRolesOwnerBound(owner, current);
        _aggregatorOf[owner] = msg.sender;
        _grantRole(FR_OWNER_ROLE, owner);
        emit FrOwnerGranted(owner, msg.sender);
    }

    /// @notice Revoke FR_OWNER_ROLE from a customer of the calling aggregator.
    /// @dev The admin may revoke too, so that the owners of an aggregator whose role was
    /// revoked can be cleaned up.
    /// @param owner The FR owner's key.
    function revokeFrOwner(address owner) external {
        address aggregator = _aggregatorOf[owner];
        bool ownAggregator = aggregator == msg.sender && hasRole(AGGREGATOR_ROLE, msg.sender);
        if (aggregator == address(0) || !(ownAggregator || hasRole(DEFAULT_ADMIN_ROLE, msg.sender))) {
            revert FlexRolesNotOwnersAggregator(owner, msg.sender);
        }
        delete _aggregatorOf[owner];
        _revokeRole(FR_OWNER_ROLE, owner);
        emit FrOwnerRevoked(owner, aggregator);
    }

    /// @notice Bind a field sensor key to a sensor id and grant it FIELD_SENSOR_ROLE; a new key
    /// for a bound id replaces (rotates) the old one.
    /// @param sensorId id32 of the sensor id.
    /// @param sensor The sensor's signing key.
    function registerSensor(bytes32 sensorId, address sensor) external onlyAdmin {
        if (sensor == address(0)) revert FlexRolesZeroAddress();
        bytes32 boundTo = _sensorIdOf[sensor];
        if (boundTo != bytes32(0) && boundTo != sensorId) revert FlexRolesSensorBound(sensor, boundTo);
        address previous = _sensorOf[sensorId];
        if (previous != address(0) && previous != sensor) {
            delete _sensorIdOf[previous];
            _revokeRole(FIELD_SENSOR_ROLE, previous);
        }
        _sensorOf[sensorId] = sensor;
        _sensorIdOf[sensor] = sensorId;
        _grantRole(FIELD_SENSOR_ROLE, sensor);
        emit SensorRegistered(sensorId, sensor, previous);
    }

    /// @notice Unbind the key of a field sensor id and revoke its FIELD_SENSOR_ROLE.
    /// @param sensorId id32 of the sensor id.
    function revokeSensor(bytes32 sensorId) external onlyAdmin {
        address sensor = _sensorOf[sensorId];
        if (sensor == address(0)) revert FlexRolesSensorUnknown(sensorId);
        delete _sensorOf[sensorId];
        delete _sensorIdOf[sensor];
        _revokeRole(FIELD_SENSOR_ROLE, sensor);
        emit SensorRevoked(sensorId, sensor);
    }

    /// @inheritdoc IFlexRoles
    function aggregatorOf(address owner) external view returns (address) {
        return _aggregatorOf[owner];
    }

    /// @inheritdoc IFlexRoles
    function sensorOf(bytes32 sensorId) external view returns (address) {
        return _sensorOf[sensorId];
    }

    /// @inheritdoc IFlexRoles
    function sensorIdOf(address sensor) external view returns (bytes32) {
        return _sensorIdOf[sensor];
    }

    /// @inheritdoc IFlexRoles
    function recoverSigner(bytes32 structHash, bytes calldata signature) external view returns (address) {
        (address signer, ECDSA.RecoverError err, ) = ECDSA.tryRecoverCalldata(_hashTypedDataV4(structHash), signature);
        return err == ECDSA.RecoverError.NoError ? signer : address(0);
    }

    /// @inheritdoc IFlexRoles
    function hashTypedData(bytes32 structHash) external view returns (bytes32) {
        return _hashTypedDataV4(structHash);
    }

    /// @inheritdoc IFlexRoles
    function domainSeparator() external view returns (bytes32) {
        return _domainSeparatorV4();
    }

    /// @inheritdoc IFlexRoles
    function isAdmin(address account) external view returns (bool) {
        return hasRole(DEFAULT_ADMIN_ROLE, account);
    }
}
