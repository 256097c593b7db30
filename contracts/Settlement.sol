// SPDX-License-Identifier: Apache-2.0
pragma solidity 0.8.30;

import {IERC20} from "@openzeppelin/contracts/token/ERC20/IERC20.sol";
import {SafeERC20} from "@openzeppelin/contracts/token/ERC20/utils/SafeERC20.sol";
import {MerkleProof} from "@openzeppelin/contracts/utils/cryptography/MerkleProof.sol";
import {IBaselineRegistry} from "./interfaces/IBaselineRegistry.sol";
import {IFlexMarket} from "./interfaces/IFlexMarket.sol";
import {IFlexRoles} from "./interfaces/IFlexRoles.sol";
import {ISettlement} from "./interfaces/ISettlement.sol";
import {FlexRoleIds} from "./libraries/FlexRoleIds.sol";

/// @title Settlement: awards paid from certified measurements (I-15, I-16, I-17)
/// @notice The market operator settles each award once: the record (baseline, measured and
/// delivered Wh, amount and claim in cents, measurement and baseline roots) is stored, and the
/// amount moves from the payer (DSO/TSO) to the aggregator through the payer's allowance to this
/// contract. A penalty beyond the amount is a claim: recorded, never moved. Aggregators pay their
/// own FR owners through their allowance.
contract Settlement is ISettlement {
    using SafeERC20 for IERC20;

    bytes32 public constant SETTLEMENT_RECORD_TYPEHASH =
        keccak256(
            "SettlementRecord(bytes32 session,bytes32 awardHash,int64 baselineWh,int64 measuredWh,int64 deliveredWh,uint64 amountCents,uint64 claimCents,bytes32 measurementRoot,bytes32 baselineRoot)"
        );

    IFlexRoles private immutable _roles;
    IFlexMarket private immutable _market;
    IBaselineRegistry private immutable _baselines;
    IERC20 private immutable _token;

    mapping(bytes32 awardHash => Settled) private _settled;
    mapping(address aggregator => mapping(bytes32 ref => bool)) private _paidRefs;

    /// @param roles_ The FlexRoles contract.
    /// @param market_ The FlexMarket contract.
    /// @param baselines_ The BaselineRegistry contract.
    /// @param token_ The SettlementToken.
    constructor(IFlexRoles roles_, IFlexMarket market_, IBaselineRegistry baselines_, IERC20 token_) {
        _roles = roles_;
        _market = market_;
        _baselines = baselines_;
        _token = token_;
    }

    /// @notice Settle one award, once, and move its amount payer → payee.
    /// @dev Requires: session OutcomeCommitted; the award in its awards root; the baseline root
    /// equal to the BRP's committed root for `day`, committed no later than the gate closure
    /// block (or a zero baseline root with a zero amount: not paid); amount and claim not both
    /// non-zero; payer a DSO or TSO; payee an aggregator.
    /// @param record The settlement record.
    /// @param payer The DSO or TSO paying (it approved this contract).
    /// @param payee The aggregator paid.
    /// @param brp The BRP whose baseline was used.
    /// @param day The delivery day of that baseline.
    /// @param awardProof Proof of `record.awardHash` against the session's awards root.
    function settle(
        SettlementRecord calldata record,
        address payer,
        address payee,
        address brp,
        uint64 day,
        bytes32[] calldata awardProof
    ) external {
        if (!_roles.hasRole(FlexRoleIds.MARKET_OPERATOR, msg.sender)) revert SettlementNotOperator(msg.sender);
        bytes32 awardHash = record.awardHash;
        if (_settled[awardHash].settledBlock != 0) revert SettlementAlreadySettled(awardHash);
        IFlexMarket.Session memory s = _market.sessionOf(record.session);
        if (s.state != IFlexMarket.SessionState.OutcomeCommitted) {
            revert SettlementWrongSessionState(record.session, s.state);
        }
        if (!MerkleProof.verifyCalldata(awardProof, s.awardsRoot, awardHash)) {
            revert SettlementUnknownAward(record.session, awardHash);
        }
        _checkBaseline(record, brp, day, s.gateClosedBlock);
        if (record.amountCents != 0 && record.claimCents != 0) revert SettlementAmountAndClaim(awardHash);
        if (!_roles.hasRole(FlexRoleIds.DSO, payer) && !_roles.hasRole(FlexRoleIds.TSO, payer)) {
            revert SettlementPayerNotBuyer(payer);
        }
        if (!_roles.hasRole(FlexRoleIds.AGGREGATOR, payee)) revert SettlementPayeeNotAggregator(payee);

        _store(record, payer, payee);
        if (record.amountCents != 0) _token.safeTransferFrom(payer, payee, record.amountCents);
    }

    function _store(SettlementRecord calldata record, address payer, address payee) private {
        bytes32 recordHash = hashRecord(record);
        _settled[record.awardHash] = Settled({
            session: record.session,
            baselineWh: record.baselineWh,
            measuredWh: record.measuredWh,
            deliveredWh: record.deliveredWh,
            amountCents: record.amountCents,
            claimCents: record.claimCents,
            payer: payer,
            payee: payee,
            settledBlock: uint64(block.number),
            measurementRoot: record.measurementRoot,
            baselineRoot: record.baselineRoot,
            recordHash: recordHash
        });
        emit AwardSettled(
            record.awardHash,
            record.session,
            payee,
            payer,
            record.deliveredWh,
            record.amountCents,
            record.claimCents,
            recordHash
        );
    }

    function _checkBaseline(
        SettlementRecord calldata record,
        address brp,
        uint64 day,
        uint64 gateClosedBlock
    ) private view {
        if (record.baselineRoot == bytes32(0)) {
            if (record.amountCents != 0) revert SettlementUnbaselinedPayment(record.awardHash);
            return;
        }
        (bytes32 root, , uint64 committedBlock) = _baselines.baselineOf(brp, day);
        if (root != record.baselineRoot) revert SettlementBaselineMismatch(brp, day, record.baselineRoot);
        if (committedBlock > gateClosedBlock) revert SettlementBaselineLate(brp, day, committedBlock, gateClosedBlock);
    }

    /// @notice Pay FR owners of the calling aggregator through its allowance, once per reference.
    /// @param ref The aggregator's reference of this payout (e.g. id32 of session and period).
    /// @param owners FR owners granted by the caller.
    /// @param amounts Amounts in euro cents, one per owner.
    function payOwners(bytes32 ref, address[] calldata owners, uint64[] calldata amounts) external {
        if (!_roles.hasRole(FlexRoleIds.AGGREGATOR, msg.sender)) revert SettlementNotAggregator(msg.sender);
        if (owners.length != amounts.length) revert SettlementLengthMismatch(owners.length, amounts.length);
        if (_paidRefs[msg.sender][ref]) revert SettlementRefUsed(msg.sender, ref);
        _paidRefs[msg.sender][ref] = true;
        for (uint256 i = 0; i < owners.length; ++i) {
            address owner = owners[i];
            if (_roles.aggregatorOf(owner) != msg.sender || !_roles.hasRole(FlexRoleIds.FR_OWNER, owner)) {
                revert SettlementNotOwnersAggregator(owner, msg.sender);
            }
            emit OwnerPaid(ref, msg.sender, owner, amounts[i]);
            if (amounts[i] != 0) _token.safeTransferFrom(msg.sender, owner, amounts[i]);
        }
    }

    // ----------------------------------------------------------------- views

    /// @notice The settlement of an award (settledBlock zero when not settled).
    /// @param awardHash The award's leaf hash.
    function settlementOf(bytes32 awardHash) external view returns (Settled memory) {
        return _settled[awardHash];
    }

    /// @notice Whether an aggregator already paid under a reference.
    /// @param aggregator The aggregator.
    /// @param ref The reference.
    function refPaid(address aggregator, bytes32 ref) external view returns (bool) {
        return _paidRefs[aggregator][ref];
    }

    /// @notice The EIP-712 struct hash of a SettlementRecord.
    /// @param record The record.
    function hashRecord(SettlementRecord calldata record) public pure returns (bytes32) {
        return
            keccak256(
                abi.encode(
                    SETTLEMENT_RECORD_TYPEHASH,
                    record.session,
                    record.awardHash,
                    record.baselineWh,
                    record.measuredWh,
                    record.deliveredWh,
                    record.amountCents,
                    record.claimCents,
                    record.measurementRoot,
                    record.baselineRoot
                )
            );
    }

    /// @notice The settlement token.
    function token() external view returns (IERC20) {
        return _token;
    }

    /// @notice The FlexMarket contract.
    function market() external view returns (IFlexMarket) {
        return _market;
    }

    /// @notice The BaselineRegistry contract.
    function baselines() external view returns (IBaselineRegistry) {
        return _baselines;
    }

    /// @notice The FlexRoles contract.
    function roles() external view returns (IFlexRoles) {
        return _roles;
    }
}
